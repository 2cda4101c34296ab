#include "bindings/jobs.h"

#include <ATen/Parallel.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "bindings/addon_data.h"
#include "bindings/errors.h"
#include "ibq/errors.h"

namespace ibqb {
namespace {

std::atomic<int> g_intra_threads{0};  // 0: libtorch's default

// Process-wide worker pool. Deliberately never destroyed: workers may still be running at exit.
class Pool {
 public:
  static Pool& get() {
    static Pool* pool = new Pool();
    return *pool;
  }
  void post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }
  int size() const { return static_cast<int>(threads_.size()); }

 private:
  Pool() {
    int n = 2;
    if (const char* env = std::getenv("IBQ_WORKERS")) n = std::max(1, std::min(64, std::atoi(env)));
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
    for (auto& t : threads_) t.detach();
  }
  void loop() {
    int applied = -1;
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !tasks_.empty(); });
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      int want = g_intra_threads.load();
      if (want > 0 && want != applied) {
        at::set_num_threads(want);
        applied = want;
      }
      task();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
};

}  // namespace

class JobQueue : public std::enable_shared_from_this<JobQueue> {
 public:
  void post(std::function<void()> task) {
    std::lock_guard<std::mutex> lock(mu_);
    if (running_) {
      pending_.push_back(std::move(task));
      return;
    }
    running_ = true;
    dispatch(std::move(task));
  }
  // Jobs submitted on the JS thread whose promise has not been settled yet (changed on the JS thread only).
  int64_t outstanding = 0;

 private:
  void dispatch(std::function<void()> task) {
    auto self = shared_from_this();
    Pool::get().post([self, task = std::move(task)] {
      task();
      self->next();
    });
  }
  void next() {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.empty()) {
      running_ = false;
      return;
    }
    auto task = std::move(pending_.front());
    pending_.pop_front();
    dispatch(std::move(task));
  }
  std::mutex mu_;
  std::deque<std::function<void()>> pending_;
  bool running_ = false;
};

std::shared_ptr<JobQueue> NewQueue() { return std::make_shared<JobQueue>(); }
bool QueueBusy(const std::shared_ptr<JobQueue>& queue) { return queue && queue->outstanding > 0; }

namespace {

struct Job;
// Everything a worker sends to the JS thread: a progress report or a finished job, in one FIFO queue so
// that no progress report arrives after its Promise settles.
struct Message {
  Job* job = nullptr;           // set: the job finished
  std::shared_ptr<JobContext::State> progress_of;  // set: a progress report
  int64_t step = 0, total = 0;
};
void Dispatch(Napi::Env env, Napi::Function, std::nullptr_t*, Message* msg);
using Completer = Napi::TypedThreadSafeFunction<std::nullptr_t, Message, Dispatch>;

}  // namespace

struct JobContext::State {
  Napi::ObjectReference abort_ref;  // keeps the Int32Array alive; touched only on the JS thread
  std::atomic<int32_t>* abort_word = nullptr;
  Napi::FunctionReference on_progress;  // JS thread only
  bool has_progress = false;
  Completer tsfn;
};

bool JobContext::aborted() const {
  return state && state->abort_word &&
         reinterpret_cast<volatile std::atomic<int32_t>*>(state->abort_word)->load(std::memory_order_relaxed) != 0;
}
void JobContext::check_aborted() const {
  if (aborted()) throw ibq::Aborted();
}
void JobContext::progress(int64_t step, int64_t total) const {
  if (!state || !state->has_progress) return;
  auto* msg = new Message{nullptr, state, step, total};
  if (state->tsfn.NonBlockingCall(msg) != napi_ok) delete msg;
}
std::function<void(int64_t, int64_t)> JobContext::progress_fn() const {
  auto self = *this;
  return [self](int64_t s, int64_t t) { self.progress(s, t); };
}
std::function<bool()> JobContext::aborted_fn() const {
  auto self = *this;
  return [self] { return self.aborted(); };
}

namespace {

struct Job {
  Work work;
  JobContext ctx;
  Finisher finisher;
  bool failed = false;
  ErrorInfo error;
  Napi::Promise::Deferred deferred;
  std::shared_ptr<JobQueue> queue;  // counted in queue->outstanding until settled
  explicit Job(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

// One completer per addon instance (per Node environment), referenced only while jobs are pending.
struct Completion {
  Completer tsfn;
  int64_t pending = 0;
};

Completion* GetCompletion(Napi::Env env) {
  auto& data = GetAddonData(env);
  if (!data.jobs) {
    auto c = std::make_shared<Completion>();
    c->tsfn = Completer::New(env, "ibq-native jobs", 0, 1);
    c->tsfn.Unref(env);
    data.jobs = c;
  }
  return static_cast<Completion*>(data.jobs.get());
}

void Settle(Napi::Env env, Job* job) {
  if (job->queue) --job->queue->outstanding;
  if (auto* c = GetCompletion(env); --c->pending == 0) c->tsfn.Unref(env);
  job->ctx.state->abort_ref.Reset();
  job->ctx.state->on_progress.Reset();
  job->ctx.state->has_progress = false;
  if (job->failed) {
    job->deferred.Reject(MakeError(env, job->error));
    return;
  }
  try {
    Napi::Value v = job->finisher ? job->finisher(env) : env.Undefined();
    job->finisher = nullptr;  // frees the job's tensors now, on the JS thread
    job->deferred.Resolve(v);
  } catch (const Napi::Error& e) {
    job->deferred.Reject(e.Value());
  } catch (...) {
    job->deferred.Reject(MakeError(env, CurrentError()));
  }
}

void Dispatch(Napi::Env env, Napi::Function, std::nullptr_t*, Message* msg) {
  std::unique_ptr<Message> owned(msg);
  std::unique_ptr<Job> job(msg->job);
  if (env == nullptr) {  // environment shutting down: references can no longer be deleted
    for (auto* st : {job ? job->ctx.state.get() : nullptr, msg->progress_of.get()}) {
      if (!st) continue;
      st->abort_ref.SuppressDestruct();
      st->on_progress.SuppressDestruct();
    }
    return;
  }
  Napi::HandleScope scope(env);
  if (job) {
    Settle(env, job.get());
    return;
  }
  auto& st = *msg->progress_of;
  if (!st.has_progress || st.on_progress.IsEmpty()) return;
  try {
    st.on_progress.Call({Napi::Number::New(env, double(msg->step)), Napi::Number::New(env, double(msg->total))});
  } catch (const Napi::Error&) {
    // an exception thrown by a user's progress callback does not stop the job
  }
}

}  // namespace

JobOptions ReadJobOptions(const Napi::Value& opts, std::shared_ptr<JobQueue> queue) {
  JobOptions out;
  out.queue = std::move(queue);
  if (opts.IsObject()) {
    auto o = opts.As<Napi::Object>();
    out.on_progress = o.Get("onProgress");
    out.abort_flag = o.Get("abortFlag");
  }
  return out;
}

Napi::Promise Submit(Napi::Env env, Work work, const JobOptions& opts) {
  auto* completion = GetCompletion(env);
  auto job = std::make_unique<Job>(env);
  job->work = std::move(work);
  job->ctx.state = std::make_shared<JobContext::State>();
  auto& st = *job->ctx.state;
  st.tsfn = completion->tsfn;
  if (!opts.abort_flag.IsEmpty() && !opts.abort_flag.IsUndefined() && !opts.abort_flag.IsNull()) {
    if (!opts.abort_flag.IsTypedArray() ||
        opts.abort_flag.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
        opts.abort_flag.As<Napi::TypedArray>().ElementLength() < 1)
      ThrowType(env, "abortFlag: expected an Int32Array of length 1");
    auto arr = opts.abort_flag.As<Napi::Int32Array>();
    st.abort_ref = Napi::Persistent(arr.As<Napi::Object>());
    st.abort_word = reinterpret_cast<std::atomic<int32_t>*>(arr.Data());
  }
  if (!opts.on_progress.IsEmpty() && !opts.on_progress.IsUndefined() && !opts.on_progress.IsNull()) {
    if (!opts.on_progress.IsFunction()) ThrowType(env, "onProgress: expected a function");
    st.on_progress = Napi::Persistent(opts.on_progress.As<Napi::Function>());
    st.has_progress = true;
  }
  Napi::Promise promise = job->deferred.Promise();
  if (opts.queue) {
    job->queue = opts.queue;
    ++opts.queue->outstanding;
  }
  if (completion->pending++ == 0) completion->tsfn.Ref(env);
  Completer tsfn = completion->tsfn;
  Job* raw = job.release();
  auto task = [raw, tsfn]() mutable {
    try {
      raw->ctx.check_aborted();
      raw->finisher = raw->work(raw->ctx);
    } catch (...) {
      raw->failed = true;
      raw->error = CurrentError();
      raw->finisher = nullptr;
    }
    raw->work = nullptr;  // release captured inputs on the worker
    auto* msg = new Message{raw, nullptr, 0, 0};
    if (tsfn.BlockingCall(msg) != napi_ok) delete msg;  // the environment is gone
  };
  if (opts.queue)
    opts.queue->post(std::move(task));
  else
    Pool::get().post(std::move(task));
  return promise;
}

void SetIntraOpThreads(int n) {
  g_intra_threads.store(n);
  at::set_num_threads(n);
}
int IntraOpThreads() {
  int n = g_intra_threads.load();
  return n > 0 ? n : at::get_num_threads();
}
int WorkerCount() { return Pool::get().size(); }

}  // namespace ibqb
