// The addon's own worker threads (jobs.h: Submit runs jobs here, never on libuv's pool) and the thread that frees
// large tensors off the event loop (ReleaseOnWorker).
#include "bindings/worker_pool.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "bindings/jobs.h"
#include "ibq/core/cpu_threads.h"
#include "ibq/core/free_memory.h"
#include "ibq/core/large_blocks.h"

namespace ibqb {
namespace {

// Set when the main environment exits (process.exit, uncaught exception): from then on no queued task
// starts, so no libtorch work runs while exit() destroys libtorch's static objects.
std::atomic<bool> g_exiting{false};

// Process-wide worker pool. Deliberately never destroyed (its threads sleep through exit()); the jobs of an
// environment are cancelled and awaited before that environment goes away (Shutdown in jobs.cpp). A task posted to
// one worker runs on that worker only; other tasks run on whichever worker is free. When no task has run or waited
// for kTrimAfter, one worker returns the free memory of the process's malloc arenas to the system (free_memory.h), so
// that a service's resident memory between bursts is what it uses, not what glibc kept from earlier ones.
class Pool {
 public:
  static Pool& get() {
    static Pool* pool = [] {
      auto* p = new Pool();
      created_.store(p);
      return p;
    }();
    return *pool;
  }
  // The pool if a task was ever posted (none is created at exit).
  static Pool* existing() { return created_.load(); }
  // worker < 0: any worker.
  void post(std::function<void()> task, int worker) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      (worker < 0 ? tasks_ : own_[size_t(worker) % own_.size()]).push_back(std::move(task));
    }
    if (worker < 0) cv_.notify_one();
    else cv_.notify_all();
  }
  int size() const { return static_cast<int>(own_.size()); }
  // Blocks until no worker runs a task (or a trim): called after g_exiting is set, when none starts any more.
  void await_quiet() {
    std::unique_lock<std::mutex> lock(mu_);
    quiet_.wait(lock, [this] { return running_ == 0; });
  }
  void stop_starting() {
    std::lock_guard<std::mutex> lock(mu_);  // a worker between its check and its pop sees the flag
    g_exiting.store(true);
  }
  int next_worker() { return static_cast<int>(next_.fetch_add(1) % own_.size()); }

 private:
  Pool() {
    int n = 2;
    if (const char* env = std::getenv("IBQ_WORKERS")) n = std::max(1, std::min(64, std::atoi(env)));
    own_.resize(size_t(n));
    for (int i = 0; i < n; ++i) std::thread([this, i] { loop(i); }).detach();
  }
  // A second: a service between bursts trims, a training loop does not (its steps reuse the arenas' free memory;
  // trimmed between steps, a small tokenizer's step page-faulted 30K times instead of 2-14K).
  static constexpr std::chrono::milliseconds kTrimAfter{1000};
  bool idle() const {
    if (running_ > 0 || !tasks_.empty()) return false;
    for (const auto& q : own_)
      if (!q.empty()) return false;
    return true;
  }
  void loop(int self) {
    int applied = -1;
    auto& own = own_[size_t(self)];
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        auto ready = [&] { return (!own.empty() || !tasks_.empty()) && !g_exiting.load(); };
        while (!ready()) {
          // the trim falls to a worker that waits while nothing runs or is queued; a worker that ends a job later
          // takes it over from there (no timed wait while others work: no spinning)
          if (!trim_due_ || !idle() || g_exiting.load()) {
            cv_.wait(lock);
            continue;
          }
          const auto due = last_job_end_ + kTrimAfter;
          if (std::chrono::steady_clock::now() < due) {
            cv_.wait_until(lock, due);
            continue;
          }
          trim_due_ = false;
          ++running_;  // awaited by await_quiet() like a task
          lock.unlock();
          ibq::return_free_memory();
          lock.lock();
          if (--running_ == 0) quiet_.notify_all();
        }
        auto& from = own.empty() ? tasks_ : own;
        task = std::move(from.front());
        from.pop_front();
        ++running_;
      }
      int want = ibq::job_threads();
      if (want > 0 && want != applied) {
        at::set_num_threads(want);
        applied = want;
      }
      {
        ibq::BlasJobThreads blas;           // the BLAS runs on this worker's thread while the job runs (no spinning pool)
        ibq::LargeBlocks::JobScope blocks;  // freed large blocks are reused while jobs run
        task();
        task = nullptr;  // its captures (tensors, modules) are released inside the running window
      }
      std::lock_guard<std::mutex> lock(mu_);
      --running_;
      last_job_end_ = std::chrono::steady_clock::now();
      trim_due_ = true;
      if (running_ == 0) quiet_.notify_all();
    }
  }
  std::mutex mu_;
  int running_ = 0;
  bool trim_due_ = false;
  std::chrono::steady_clock::time_point last_job_end_;
  static inline std::atomic<Pool*> created_{nullptr};
  std::condition_variable cv_, quiet_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::deque<std::function<void()>>> own_;
  std::atomic<unsigned> next_{0};
};

// Frees the tensors the JS thread hands over (ReleaseOnWorker) on a thread of its own: freeing hundreds of MB
// takes milliseconds the event loop should not wait for, and the job pool may be busy for seconds. Never
// destroyed; stop() (process exit) waits for a free in progress and leaves the rest.
class Releaser {
 public:
  static Releaser* instance(bool create) {
    static std::atomic<Releaser*> r{nullptr};
    static std::once_flag once;
    if (create) std::call_once(once, [] { r.store(new Releaser()); });
    return r.load();
  }
  // false: stopped (the caller keeps `t` alive for good).
  bool post(at::Tensor& t) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return false;
      queue_.push_back(std::move(t));
    }
    cv_.notify_one();
    return true;
  }
  void stop() {
    std::unique_lock<std::mutex> lock(mu_);
    stopped_ = true;
    cv_.notify_all();
    idle_.wait(lock, [this] { return !freeing_; });
  }

 private:
  Releaser() { std::thread([this] { loop(); }).detach(); }
  void loop() {
    for (;;) {
      at::Tensor t;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopped_ || !queue_.empty(); });
        if (stopped_) return;
        t = std::move(queue_.front());
        queue_.pop_front();
        freeing_ = true;
      }
      t.reset();
      {
        std::lock_guard<std::mutex> lock(mu_);
        freeing_ = false;
      }
      idle_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_, idle_;
  std::deque<at::Tensor> queue_;
  bool stopped_ = false, freeing_ = false;
};

}  // namespace

void PostToPool(std::function<void()> task, int worker) { Pool::get().post(std::move(task), worker); }
int NextWorker() { return Pool::get().next_worker(); }

void StopForExit() {
  if (Pool* pool = Pool::existing()) pool->stop_starting();
  else g_exiting.store(true);
  if (auto* r = Releaser::instance(false)) r->stop();
}

void ReleaseOnWorker(at::Tensor t) {
  constexpr size_t kLarge = size_t(1) << 20;
  if (!t.defined() || !t.has_storage() || t.storage().nbytes() < kLarge) return;
  if (g_exiting.load() || !Releaser::instance(true)->post(t)) new at::Tensor(std::move(t));  // kept: exit() follows
}

int WorkerCount() { return Pool::get().size(); }

bool ProcessExiting() { return g_exiting.load(std::memory_order_relaxed); }

void AwaitPoolQuiet() {
  if (Pool* pool = Pool::existing()) pool->await_quiet();
}

}  // namespace ibqb
