// libtorch's logging, set up once per process by the addon.
#pragma once

namespace ibq {

// Initialises glog (when libtorch logs through it, as Debian's does) the way PyTorch's own builds log: warnings and
// errors to stderr, no log files, and no "Logging before InitGoogleLogging()" banner from each process. GLOG_*
// variables (GLOG_minloglevel, GLOG_logtostderr, ...) and TORCH_CPP_LOG_LEVEL (INFO, WARNING, ERROR) still apply.
// Installs no signal handlers. Idempotent and thread-safe; does nothing when glog was initialised already.
void init_logging();

}  // namespace ibq
