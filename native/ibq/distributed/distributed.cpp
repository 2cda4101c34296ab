#include "ibq/distributed/distributed_impl.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>
#include <thread>

#if defined(USE_C10D_NCCL)
#include <c10/cuda/CUDAFunctions.h>
#endif

#include "ibq/core/errors.h"

namespace ibq::dist {
namespace {

using std::chrono::milliseconds;

std::string where(const GroupOptions& o) { return o.master_addr + ":" + std::to_string(o.master_port); }

std::string seconds(double s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

// The local address the kernel would use to reach the master (a UDP "connect" sends nothing); Gloo binds its
// device there, so ranks on other hosts (or network namespaces) can reach this one.
std::string local_address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res)
    throw DistError("MASTER_ADDR '" + host + "' does not resolve to an IPv4 address");
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  std::string out;
  if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
    sockaddr_in me{};
    socklen_t len = sizeof(me);
    char buf[INET_ADDRSTRLEN] = {0};
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&me), &len) == 0 && inet_ntop(AF_INET, &me.sin_addr, buf, sizeof(buf)))
      out = buf;
  }
  if (fd >= 0) close(fd);
  freeaddrinfo(res);
  if (out.empty()) throw DistError("no route from this host to MASTER_ADDR " + host);
  return out;
}

std::string first_line(const std::string& s) {
  auto pos = s.find('\n');
  return pos == std::string::npos ? s : s.substr(0, pos);
}

void wait_work(const c10::intrusive_ptr<c10d::Work>& w) {
  w->wait();
}

// "ranks 2, 3 (node 1)": the ranks that did not arrive, with their nodes when ranks_per_node is known.
std::string name_missing(const std::vector<int>& missing, int ranks_per_node) {
  std::string ranks, nodes;
  std::vector<int> seen;
  for (int r : missing) {
    ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    if (ranks_per_node > 0 && (seen.empty() || seen.back() != r / ranks_per_node)) {
      seen.push_back(r / ranks_per_node);
      nodes += (nodes.empty() ? "" : ", ") + std::to_string(seen.back());
    }
  }
  std::string out = (missing.size() > 1 ? "ranks " : "rank ") + ranks;
  if (!nodes.empty()) out += std::string(seen.size() > 1 ? " (nodes " : " (node ") + nodes + ")";
  return out;
}

// Every rank marks its arrival in the store and waits, until `deadline`, for all world_size marks; on the deadline
// it names the ranks (and nodes) whose mark is missing. TCPStore's own waitWorkers would let rank 0 pass silently
// at its timeout and leave the rest to Gloo's rendezvous, a second timeout.
// Returns false when this store is not the group's: a stale one (a previous group on the same port, still closing:
// its counter is already full) or one that went away; the caller connects again.
bool await_arrivals(c10d::Store& st, const GroupOptions& o, std::chrono::steady_clock::time_point deadline) {
  const std::string me = "rank " + std::to_string(o.rank);
  const auto key = [](int r) { return "ibq/arrived/" + std::to_string(r); };
  // whoever reaches its deadline first names the missing ranks in "ibq/missing" for the others (rank 0, whose store
  // goes with it, waits up to 2 s for them to read it)
  const auto text = [&](const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); };
  try {
    st.set(key(o.rank), std::vector<uint8_t>{1});
    int64_t arrived = st.add("ibq/arrivals", 1);
    if (arrived > o.world_size) return false;
    while ((arrived = st.add("ibq/arrivals", 0)) < o.world_size) {
      if (st.check({"ibq/missing"})) {
        st.add("ibq/missing_seen", 1);
        throw DistError(me + ": " + text(st.get("ibq/missing")));
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        std::vector<int> missing;
        for (int r = 0; r < o.world_size; ++r)
          if (!st.check({key(r)})) missing.push_back(r);
        const std::string what = name_missing(missing, o.ranks_per_node) + " did not join the rendezvous at " + where(o) +
                                 " within " + seconds(o.timeout_s) + " s (" + std::to_string(o.world_size - missing.size()) +
                                 " of " + std::to_string(o.world_size) + " ranks arrived)";
        st.set("ibq/missing", std::vector<uint8_t>(what.begin(), what.end()));
        if (o.rank != 0) st.add("ibq/missing_seen", 1);  // this rank knows: rank 0 need not wait for it to read
        const auto wait_until = std::chrono::steady_clock::now() + milliseconds(2000);
        while (o.rank == 0 && st.add("ibq/missing_seen", 0) < arrived - 1 && std::chrono::steady_clock::now() < wait_until)
          std::this_thread::sleep_for(milliseconds(20));
        throw DistError(me + ": " + what);
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
    return true;
  } catch (const DistError&) {
    throw;
  } catch (const std::exception& e) {
    if (o.rank != 0) return false;  // the store went away under a client: connect again (until the deadline)
    throw DistError(me + ": the rendezvous store this rank hosts at " + where(o) + " failed: " + first_line(e.what()));
  }
}

}  // namespace

ProcessGroup::ProcessGroup(const GroupOptions& o) : opts_(o), impl_(std::make_unique<Impl>()) {
  IBQ_CHECK(o.world_size >= 1 && o.rank >= 0 && o.rank < o.world_size && o.master_port >= 1 &&
                o.master_port <= 65535 && o.timeout_s > 0,
            "process group options out of range (rank " + std::to_string(o.rank) + " of " +
                std::to_string(o.world_size) + ", port " + std::to_string(o.master_port) + ")");
  const auto timeout = milliseconds(static_cast<int64_t>(std::ceil(o.timeout_s * 1000)));
  impl_->device = at::Device(o.device);
  const bool cuda = impl_->device.is_cuda();
  const std::string me = "rank " + std::to_string(o.rank);

  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(o.master_port);
  so.isServer = o.rank == 0;
  so.numWorkers = static_cast<size_t>(o.world_size);
  so.waitWorkers = false;  // await_arrivals below waits for the workers, within the same timeout, naming the missing
  so.timeout = timeout;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (o.rendezvous_deadline_ms > 0) {
    // the wall-clock deadline on the steady clock (a later change of the system clock does not move it)
    const double now_ms = std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch()).count();
    deadline = std::chrono::steady_clock::now() + milliseconds(static_cast<int64_t>(std::ceil(o.rendezvous_deadline_ms - now_ms)));
  }
  const std::string node0 = o.ranks_per_node > 0 ? " (node 0)" : "";
  for (bool joined = false; !joined;) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    // at least 1 s: c10d counts the connect timeout in whole seconds (less fails at once, 'timed out after 0s')
    so.timeout = std::max(left, milliseconds(1000));
    try {
      impl_->store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
      impl_->store->setTimeout(timeout);
    } catch (const std::exception& e) {
      const std::string msg = e.what();
      if (o.rank == 0 && (msg.find("in use") != std::string::npos || msg.find("listen") != std::string::npos))
        throw DistError(me + ": cannot host the rendezvous at " + where(o) + ": the port is in use or the address is not "
                        "this host's (set MASTER_PORT to a free port; " + first_line(msg) + ")");
      throw DistError(me + ": the rendezvous at " + where(o) + " failed within " + seconds(o.timeout_s) + " s: rank 0" + node0 +
                      ", which hosts it, did not arrive (master unreachable or not started): " + first_line(msg));
    }
    joined = await_arrivals(*impl_->store, o, deadline);
    if (!joined) {
      impl_->store.reset();
      if (std::chrono::steady_clock::now() >= deadline)
        throw DistError(me + ": the rendezvous at " + where(o) + " failed within " + seconds(o.timeout_s) + " s: the store rank 0" +
                        node0 + " hosts went away before all ranks joined (rank 0 stopped), and none came up again");
      std::this_thread::sleep_for(milliseconds(100));
    }
  }
  try {
    if (cuda) {
#if defined(USE_C10D_NCCL)
      c10::cuda::set_device(impl_->device.index() < 0 ? 0 : impl_->device.index());
      auto no = c10d::ProcessGroupNCCL::Options::create();
      no->timeout = timeout;
      auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, o.rank, o.world_size, no);
      impl_->pg = compat::as_process_group(impl_->store, nccl, true);
#else
      throw DistError(me + ": device " + o.device + " needs NCCL, but this build of libtorch has no CUDA/NCCL");
#endif
    } else {
      auto go = c10d::ProcessGroupGloo::Options::create(timeout);
      go->devices.push_back(o.gloo_interface.empty()
                                ? c10d::ProcessGroupGloo::createDeviceForHostname(local_address_towards(o.master_addr, o.master_port))
                                : c10d::ProcessGroupGloo::createDeviceForInterface(o.gloo_interface));
      auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, o.rank, o.world_size, go);
      impl_->pg = compat::as_process_group(impl_->store, gloo, false);
    }
  } catch (const DistError&) {
    throw;
  } catch (const std::exception& e) {
    throw DistError(me + ": joining the process group at " + where(o) + " failed: " + first_line(e.what()));
  }
}

ProcessGroup::~ProcessGroup() {
  if (failed_ && impl_) {
    impl_->pg.release();
    impl_->store.release();
  }
}

at::Device ProcessGroup::device() const { return impl_->device; }

void ProcessGroup::broadcast(const std::vector<at::Tensor>& tensors, int root) {
  if (tensors.empty()) return;
  try {
    c10d::broadcast_coalesced(impl_->pg, tensors, size_t(256) << 20, root);
  } catch (const std::exception& e) {
    raise("broadcast", e.what());
  }
}

void ProcessGroup::all_reduce_sum(const std::vector<at::Tensor>& tensors) {
  for (const auto& t : tensors) {
    std::vector<at::Tensor> one{t};
    try {
      wait_work(impl_->pg->allreduce(one));
    } catch (const std::exception& e) {
      raise("all_reduce", e.what());
    }
  }
}

std::vector<double> ProcessGroup::all_reduce_sum(const std::vector<double>& values) {
  if (values.empty()) return {};
  auto t = torch::tensor(values, torch::dtype(at::kDouble)).to(impl_->device);
  all_reduce_sum(std::vector<at::Tensor>{t});
  t = t.cpu();
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

void ProcessGroup::barrier() {
  try {
    wait_work(impl_->pg->barrier());
  } catch (const std::exception& e) {
    raise("barrier", e.what());
  }
}

void ProcessGroup::report_failure(const std::string& why) noexcept {
  try {
    const std::string v = why.empty() ? "failed" : why;
    impl_->store->set("ibq/failed/" + std::to_string(opts_.rank), std::vector<uint8_t>(v.begin(), v.end()));
  } catch (...) {
  }
}

// Which peers stopped: each survivor of a failed collective marks itself alive; ranks that reported a failure
// say why; ranks with neither mark within a few seconds are gone. A store that does not answer means rank 0
// (its host) is gone.
std::string ProcessGroup::who_failed() {
  auto& st = *impl_->store;
  const auto key = [](const char* what, int r) { return std::string("ibq/") + what + "/" + std::to_string(r); };
  try {
    st.set(key("alive", opts_.rank), std::vector<uint8_t>{1});
    const auto deadline = std::chrono::steady_clock::now() + milliseconds(std::min<int64_t>(3000, int64_t(opts_.timeout_s * 1000)));
    std::vector<std::string> failed, gone;
    while (true) {
      failed.clear();
      gone.clear();
      for (int r = 0; r < opts_.world_size; ++r) {
        if (r == opts_.rank) continue;
        if (st.check({key("failed", r)})) {
          auto v = st.get(key("failed", r));
          failed.push_back("rank " + std::to_string(r) + " failed: " + std::string(v.begin(), v.end()));
        } else if (!st.check({key("alive", r)})) {
          gone.push_back(std::to_string(r));
        }
      }
      if (gone.empty() || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(milliseconds(100));
    }
    std::string out;
    for (const auto& f : failed) out += (out.empty() ? "" : "; ") + f;
    if (!gone.empty()) {
      std::string list;
      for (const auto& g : gone) list += (list.empty() ? "" : ", ") + g;
      out += (out.empty() ? "" : "; ") + std::string(gone.size() > 1 ? "ranks " : "rank ") + list +
             (gone.size() > 1 ? " are" : " is") + " gone (exited, killed or unreachable)";
    }
    return out.empty() ? "no peer reported a failure" : out;
  } catch (...) {
    return "rank 0 is gone (the rendezvous store it hosts at " + where(opts_) + " does not answer)";
  }
}

void ProcessGroup::raise(const std::string& op, const std::string& cause) {
  failed_ = true;
  const std::string who = opts_.world_size > 1 ? who_failed() : "";
  throw DistError("rank " + std::to_string(opts_.rank) + ": " + op + " failed: " + who + " (c10d: " + first_line(cause) + ")");
}

}  // namespace ibq::dist
