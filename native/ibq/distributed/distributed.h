// A c10d process group for data-parallel training (as torch.distributed.init_process_group with init_method
// env://): TCPStore rendezvous at master_addr:master_port (rank 0 hosts the store), Gloo on the CPU, NCCL on CUDA
// (compiled when libtorch has it). Every collective throws ibq::dist::DistError naming this rank, the operation and,
// where the store still answers, the rank that failed ("rank 1 is gone" / "rank 1 failed: <why>").
#pragma once
#include <torch/torch.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace ibq::dist {

// A collective or the rendezvous failed (peer gone, timeout, port in use, master unreachable).
struct DistError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct GroupOptions {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int world_size = 1;
  int rank = 0;
  double timeout_s = 60;           // rendezvous and every collective
  std::string device = "cpu";      // "cpu": Gloo; "cuda:i": NCCL on that device
  std::string gloo_interface;      // GLOO_SOCKET_IFNAME; empty: the local address that routes to the master
  int ranks_per_node = 0;          // LOCAL_WORLD_SIZE: names the nodes of ranks that never join (0: unknown)
  // When the rendezvous gives up: milliseconds since the Unix epoch (system clock); 0: timeout_s from the start
  // of the rendezvous. lib/distributed counts it from the start of the rank or its launcher.
  double rendezvous_deadline_ms = 0;
};

class ProcessGroup {
 public:
  // Rendezvous; returns once all world_size ranks joined. Throws DistError (port in use, master unreachable
  // within the timeout, ranks that did not join within the timeout, named with their nodes; NCCL requested
  // without CUDA) and ValueError for bad options. The whole rendezvous keeps to one timeout (or to
  // rendezvous_deadline_ms).
  explicit ProcessGroup(const GroupOptions& opts);
  ~ProcessGroup();  // after a failed collective: leaves the c10d objects alive (see failed_)
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return opts_.rank; }
  int world_size() const { return opts_.world_size; }
  const GroupOptions& options() const { return opts_; }
  at::Device device() const;

  // In place, every tensor on device(); same shapes and dtypes on all ranks.
  void broadcast(const std::vector<at::Tensor>& tensors, int root = 0);
  void all_reduce_sum(const std::vector<at::Tensor>& tensors);
  // Element-wise sum over ranks of a small vector (float64 on the wire).
  std::vector<double> all_reduce_sum(const std::vector<double>& values);
  void barrier();

  // Records in the store that this rank stopped because of `why` (best effort, never throws), so that the
  // others name it in their errors.
  void report_failure(const std::string& why) noexcept;
  // Throws DistError "rank R: <op> failed: <who failed>; <cause>" (cause: the c10d/gloo message).
  [[noreturn]] void raise(const std::string& op, const std::string& cause);

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::string who_failed();
  GroupOptions opts_;
  bool failed_ = false;  // a collective failed: the destructor then leaks the c10d objects (their threads may
                         // wait on peers that are gone; the process is about to exit anyway)
  std::unique_ptr<Impl> impl_;
};

}  // namespace ibq::dist
