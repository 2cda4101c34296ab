#include "ibq/core/logging.h"

#include <c10/util/Logging.h>

#include <cstdlib>
#include <mutex>

namespace ibq {

void init_logging() {
  static std::once_flag once;
  std::call_once(once, [] {
#if defined(C10_USE_GLOG)
    if (!google::IsGoogleLoggingInitialized()) {  // glog >= 0.6
      // glog's defaults after initialisation are log files under /tmp and INFO upwards: PyTorch without glog
      // prints warnings and errors to stderr, so do that unless the user set glog's own variables
      if (std::getenv("GLOG_logtostderr") == nullptr) FLAGS_logtostderr = true;
      if (std::getenv("GLOG_minloglevel") == nullptr) FLAGS_minloglevel = google::GLOG_WARNING;
      google::InitGoogleLogging("ibq-native");
    }
#endif
    c10::initLogging();  // TORCH_CPP_LOG_LEVEL
  });
}

}  // namespace ibq
