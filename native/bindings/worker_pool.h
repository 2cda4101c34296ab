// The process-wide worker threads of the addon (IBQ_WORKERS, default 2; never destroyed: their threads sleep through
// exit()) and the thread that frees large tensors. jobs.cpp runs every job through PostToPool.
#pragma once
#include <functional>

namespace ibqb {

// Runs `task` on worker `worker` (FIFO per worker), or with worker < 0 on whichever worker is free; after
// StopForExit() no queued task starts any more. Each task runs with the job thread settings (ibq::job_threads,
// BLAS held to the job's thread, large blocks reused: native/ibq/core/cpu_threads.h, large_blocks.h).
void PostToPool(std::function<void()> task, int worker = -1);
// The worker for a new model's queue (round robin): a model's jobs all run on it, so its allocations are freed and
// reused in that thread's malloc arena instead of growing one arena per worker.
int NextWorker();
// The main environment exits (process.exit, uncaught exception): from now on no queued task starts, so no libtorch
// work runs while exit() destroys libtorch's static objects; the tensor-freeing thread stops after its current free.
void StopForExit();
// Whether StopForExit() was called: every running job then reads as aborted (JobContext::aborted).
bool ProcessExiting();
// After StopForExit(): blocks until no worker runs a task (their jobs are cancelled by then). Until it returns a
// worker may still release a job's tensors or reset thread settings, which must not overlap exit()'s destruction of
// libtorch's static objects.
void AwaitPoolQuiet();

}  // namespace ibqb
