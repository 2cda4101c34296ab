// Long native calls run on the addon's own worker threads (not the libuv pool) and settle a Promise.
// Jobs submitted to one JobQueue (one per model) run one at a time, in submission order. A job's lambda
// holds (by value) every at::Tensor it uses, so disposing the JS handles while it runs is safe.
#pragma once
#include <ATen/Tensor.h>
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

namespace ibqb {

// Made on the worker thread, called on the JS thread to turn the job's result into a JS value.
using Finisher = std::function<Napi::Value(Napi::Env)>;

// What a running job may use: progress reports and the abort flag (from an AbortSignal).
class JobContext {
 public:
  // Throws ibq::Aborted when the job's signal has fired.
  void check_aborted() const;
  bool aborted() const;
  // Calls the job's onProgress(step, total) on the JS thread; never blocks the worker.
  void progress(int64_t step, int64_t total) const;
  // Thread-safe progress/abort hooks for native code that does not know about this class.
  std::function<void(int64_t, int64_t)> progress_fn() const;
  std::function<bool()> aborted_fn() const;

  struct State;
  std::shared_ptr<State> state;
};

using Work = std::function<Finisher(JobContext&)>;

class JobQueue;
std::shared_ptr<JobQueue> NewQueue();
// Whether a job of `queue` is running or waiting.
bool QueueBusy(const std::shared_ptr<JobQueue>& queue);
// Closes `queue` for good (its model was disposed; JS thread only): its queued jobs are rejected at once with
// ERR_IBQ_DISPOSED, the running one reads as aborted (it stops at its next check) and is rejected with the same
// code whatever it returns, and Submit refuses new jobs on it (ERR_IBQ_DISPOSED).
void CloseQueue(Napi::Env env, const std::shared_ptr<JobQueue>& queue);

struct JobOptions {
  std::shared_ptr<JobQueue> queue;  // null: runs as soon as a worker is free
  Napi::Value on_progress;          // optional function(step, total)
  Napi::Value abort_flag;           // optional Int32Array(1): non-zero means aborted (set by lib/ from AbortSignal)
};

Napi::Promise Submit(Napi::Env env, Work work, const JobOptions& opts = {});

// Reads { onProgress, abortFlag } from a JS options object (either may be absent).
JobOptions ReadJobOptions(const Napi::Value& opts, std::shared_ptr<JobQueue> queue);

// Called once per environment when the addon loads: creates the completer and adds the cleanup hook that
// calls Shutdown(env, false) when the environment goes away (worker_threads end, normal exit).
void InitJobs(Napi::Env env);
// Stops the environment's jobs: no new ones, queued ones never start, running ones are cancelled (their
// abort flag reads as set) and awaited; their Promises never settle. `process_exiting` (the main thread's
// 'exit'): besides, no queued task of any environment starts any more, since exit() follows.
void Shutdown(Napi::Env env, bool process_exiting);

// Drops `t` (a JS handle's tensor: dispose(), or the garbage collector's finalizer) on a thread of the addon when
// it holds 1 MB or more, so that freeing its memory does not hold up the event loop; smaller ones are dropped here.
// While the process exits, large ones are kept (exit() follows).
void ReleaseOnWorker(at::Tensor t);

int WorkerCount();

}  // namespace ibqb
