#include "bindings/jobs.h"
#include "bindings/worker_pool.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <unordered_set>

#include "bindings/addon_data.h"
#include "bindings/errors.h"
#include "ibq/core/errors.h"

namespace ibqb {

class JobQueue : public std::enable_shared_from_this<JobQueue> {
 public:
  // A queued job: `run` starts it on a worker; `reject` (JS thread) settles it as disposed instead.
  struct Entry {
    std::function<void()> run;
    std::function<void(Napi::Env)> reject;
    std::shared_ptr<JobContext::State> state;
  };
  void post(Entry e) {
    std::lock_guard<std::mutex> lock(mu_);
    if (running_) {
      pending_.push_back(std::move(e));
      return;
    }
    running_ = true;
    dispatch(std::move(e));
  }
  // JS thread: marks the queue closed, flags the running job, rejects the queued ones (see CloseQueue).
  void close(Napi::Env env);
  bool closed() const { return closed_.load(); }
  // Jobs submitted on the JS thread whose promise has not been settled yet (changed on the JS thread only).
  int64_t outstanding = 0;

 private:
  void dispatch(Entry e);
  void next() {
    std::lock_guard<std::mutex> lock(mu_);
    current_.reset();
    if (pending_.empty()) {
      running_ = false;
      return;
    }
    auto e = std::move(pending_.front());
    pending_.pop_front();
    dispatch(std::move(e));
  }
  std::mutex mu_;
  std::deque<Entry> pending_;
  std::shared_ptr<JobContext::State> current_;  // the job handed to the pool (running or about to)
  bool running_ = false;
  std::atomic<bool> closed_{false};
  const int worker_ = NextWorker();  // every job of this queue (model) runs on this worker
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
  std::atomic<bool> cancelled{false};  // set when the job's environment shuts down
  std::atomic<bool> disposed{false};   // set when the model whose queue runs the job is disposed
  Napi::FunctionReference on_progress;  // JS thread only
  bool has_progress = false;
  Completer tsfn;
};

bool JobContext::aborted() const {
  if (!state) return false;
  if (state->cancelled.load(std::memory_order_relaxed) || state->disposed.load(std::memory_order_relaxed) ||
      ProcessExiting())
    return true;
  return state->abort_word &&
         reinterpret_cast<volatile std::atomic<int32_t>*>(state->abort_word)->load(std::memory_order_relaxed) != 0;
}
void JobContext::check_aborted() const {
  if (aborted()) throw ibq::Aborted();
}
void JobContext::progress(int64_t step, int64_t total) const {
  if (!state || !state->has_progress || state->cancelled.load() || ProcessExiting()) return;
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

ErrorInfo DisposedError() {
  return {ErrorInfo::kDisposed, "model: the model was disposed (dispose()) before this call could finish"};
}

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

// The jobs of one Node environment (main thread or a worker thread): its completer, and the jobs submitted
// and not yet finished on a worker. When the environment goes away (Shutdown), its jobs are cancelled, the
// running ones awaited, and none of them touches the environment afterwards.
struct EnvJobs {
  Completer tsfn;
  int64_t pending = 0;  // JS thread only: submitted and not yet settled (keeps the loop alive)
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_set<JobContext::State*> live;  // submitted, not finished on a worker
  int running = 0;                               // of those, running on a worker now
  bool closing = false;
};

std::shared_ptr<EnvJobs> GetEnvJobs(Napi::Env env) {
  auto& data = GetAddonData(env);
  if (!data.jobs) {
    auto c = std::make_shared<EnvJobs>();
    c->tsfn = Completer::New(env, "ibq-native jobs", 0, 1);
    c->tsfn.Unref(env);
    data.jobs = c;
  }
  return std::static_pointer_cast<EnvJobs>(data.jobs);
}

// Frees a job whose environment is gone or going, off the JS thread: its JS references are abandoned (they
// die with the environment), its C++ parts (tensors, modules) are released here while libtorch is alive.
void Discard(Job* job) {
  job->ctx.state->abort_ref.SuppressDestruct();
  job->ctx.state->on_progress.SuppressDestruct();
  job->ctx.state->abort_word = nullptr;
  delete job;
}

void Settle(Napi::Env env, Job* job) {
  if (job->queue) --job->queue->outstanding;
  if (auto c = GetEnvJobs(env); --c->pending == 0) c->tsfn.Unref(env);
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
  // environment shutting down, or the process exiting (a worker_thread's environment is being stopped: no
  // JavaScript runs there any more): references can no longer be deleted
  if (env == nullptr || ProcessExiting()) {
    if (msg->job) Discard(msg->job);
    if (auto* st = msg->progress_of.get()) {
      st->abort_ref.SuppressDestruct();
      st->on_progress.SuppressDestruct();
    }
    return;
  }
  std::unique_ptr<Job> job(msg->job);
  Napi::HandleScope scope(env);
  if (job) {
    try {
      Settle(env, job.get());
    } catch (const Napi::Error&) {
      // settling itself failed: the environment stopped running JavaScript between the check above and here
      // (a worker_thread stopped by the process's exit); nothing can take the result
    }
    return;
  }
  auto& st = *msg->progress_of;
  if (!st.has_progress || st.on_progress.IsEmpty()) return;
  try {
    st.on_progress.Call({Napi::Number::New(env, double(msg->step)), Napi::Number::New(env, double(msg->total))});
  } catch (const Napi::Error&) {
    // not ours to handle here: lib/core/job.ts wraps the callbacks of the API, stopping the job and rejecting
    // its call with what a callback threw
  }
}

// Runs `raw` on a worker unless its environment is closing; hands the result to the JS thread.
void RunJob(const std::shared_ptr<EnvJobs>& jobs, Job* raw) {
  {
    std::lock_guard<std::mutex> lock(jobs->mu);
    if (jobs->closing) {
      jobs->live.erase(raw->ctx.state.get());
      Discard(raw);
      return;
    }
    ++jobs->running;
  }
  try {
    raw->ctx.check_aborted();
    raw->finisher = raw->work(raw->ctx);
  } catch (...) {
    raw->failed = true;
    raw->error = CurrentError();
    raw->finisher = nullptr;
  }
  raw->work = nullptr;  // release captured inputs on the worker
  if (raw->ctx.state->disposed.load()) {  // its model was disposed while it ran: nothing it made is handed out
    raw->failed = true;
    raw->error = DisposedError();
    raw->finisher = nullptr;
  }
  std::lock_guard<std::mutex> lock(jobs->mu);
  --jobs->running;
  jobs->live.erase(raw->ctx.state.get());
  if (jobs->closing || ProcessExiting()) {  // nobody will take the result (exit(): no environment runs JS)
    Discard(raw);
  } else {
    // The queue is unbounded: this never blocks. Under the lock, so Shutdown cannot finish in between.
    auto* msg = new Message{raw, nullptr, 0, 0};
    if (jobs->tsfn.BlockingCall(msg) != napi_ok) {
      delete msg;
      Discard(raw);
    }
  }
  jobs->cv.notify_all();
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
  auto jobs = GetEnvJobs(env);
  {
    std::lock_guard<std::mutex> lock(jobs->mu);
    if (jobs->closing) {
      ThrowCoded(env, ErrorInfo::kShuttingDown, "ibq-native: the environment is shutting down; no new native calls");
    }
  }
  if (opts.queue && opts.queue->closed()) ThrowCoded(env, DisposedError().kind, DisposedError().message);
  auto job = std::make_unique<Job>(env);
  job->work = std::move(work);
  job->ctx.state = std::make_shared<JobContext::State>();
  auto& st = *job->ctx.state;
  st.tsfn = jobs->tsfn;
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
  if (jobs->pending++ == 0) jobs->tsfn.Ref(env);
  Job* raw = job.release();
  {
    std::lock_guard<std::mutex> lock(jobs->mu);
    jobs->live.insert(raw->ctx.state.get());
  }
  auto task = [jobs, raw] { RunJob(jobs, raw); };
  if (!opts.queue) {
    PostToPool(std::move(task));
    return promise;
  }
  auto reject = [jobs, raw](Napi::Env env) {
    {
      std::lock_guard<std::mutex> lock(jobs->mu);
      jobs->live.erase(raw->ctx.state.get());
    }
    std::unique_ptr<Job> job(raw);
    job->work = nullptr;
    job->failed = true;
    job->error = DisposedError();
    Napi::HandleScope scope(env);
    Settle(env, job.get());
  };
  opts.queue->post({std::move(task), std::move(reject), raw->ctx.state});
  return promise;
}

void JobQueue::dispatch(Entry e) {
  current_ = e.state;
  auto self = shared_from_this();
  PostToPool(
      [self, run = std::move(e.run)] {
        run();
        self->next();
      },
      worker_);
}

void JobQueue::close(Napi::Env env) {
  std::deque<Entry> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_.store(true);
    if (current_) current_->disposed.store(true);
    dropped.swap(pending_);
  }
  for (auto& e : dropped) e.reject(env);
}

void CloseQueue(Napi::Env env, const std::shared_ptr<JobQueue>& queue) {
  if (queue) queue->close(env);
}

void Shutdown(Napi::Env env, bool process_exiting) {
  auto* data = env.GetInstanceData<AddonData>();
  if (process_exiting) StopForExit();
  if (!data || !data->jobs) return;
  auto jobs = std::static_pointer_cast<EnvJobs>(data->jobs);
  std::unique_lock<std::mutex> lock(jobs->mu);
  jobs->closing = true;
  for (auto* st : jobs->live) st->cancelled.store(true);
  // Running jobs stop at their next abort check (or when their current op ends); queued ones never start.
  jobs->cv.wait(lock, [&] { return jobs->running == 0; });
  lock.unlock();
  // Then the workers' own work after a job (releasing what it held, resetting thread settings): exit() follows.
  if (process_exiting) AwaitPoolQuiet();
}

void InitJobs(Napi::Env env) {
  // The completer is created before the cleanup hook is added: hooks run in reverse order, so Shutdown runs
  // while the completer still exists.
  GetEnvJobs(env);
  env.AddCleanupHook([env] { Shutdown(env, false); });
}

}  // namespace ibqb
