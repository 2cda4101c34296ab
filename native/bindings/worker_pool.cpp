// The addon's own worker threads (jobs.h: Submit runs jobs here, never on libuv's pool) and the thread that frees
// large tensors off the event loop (ReleaseOnWorker).
#include "bindings/worker_pool.h"

#include <ATen/Parallel.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "bindings/jobs.h"

namespace ibqb {
namespace {

std::atomic<int> g_intra_threads{0};  // 0: libtorch's default
// Set when the main environment exits (process.exit, uncaught exception): from then on no queued task
// starts, so no libtorch work runs while exit() destroys libtorch's static objects.
std::atomic<bool> g_exiting{false};

// Process-wide worker pool. Deliberately never destroyed (its threads sleep through exit()); the jobs of an
// environment are cancelled and awaited before that environment goes away (Shutdown in jobs.cpp).
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
        cv_.wait(lock, [this] { return !tasks_.empty() && !g_exiting.load(); });
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

void PostToPool(std::function<void()> task) { Pool::get().post(std::move(task)); }

void StopForExit() {
  g_exiting.store(true);
  if (auto* r = Releaser::instance(false)) r->stop();
}

void ReleaseOnWorker(at::Tensor t) {
  constexpr size_t kLarge = size_t(1) << 20;
  if (!t.defined() || !t.has_storage() || t.storage().nbytes() < kLarge) return;
  if (g_exiting.load() || !Releaser::instance(true)->post(t)) new at::Tensor(std::move(t));  // kept: exit() follows
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
