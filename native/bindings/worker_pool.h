// The process-wide worker threads of the addon (IBQ_WORKERS, default 2; never destroyed: their threads sleep through
// exit()) and the thread that frees large tensors. jobs.cpp runs every job through PostToPool.
#pragma once
#include <functional>

namespace ibqb {

// Runs `task` on a worker thread (FIFO); after StopForExit() no queued task starts any more.
void PostToPool(std::function<void()> task);
// The main environment exits (process.exit, uncaught exception): from now on no queued task starts, so no libtorch
// work runs while exit() destroys libtorch's static objects; the tensor-freeing thread stops after its current free.
void StopForExit();

}  // namespace ibqb
