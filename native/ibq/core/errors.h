// Exception types of the pure libtorch layer. The bindings map them to JS error classes:
// TypeError -> TypeError, ValueError -> RangeError (ShapeError: with code ERR_IBQ_SHAPE), Aborted -> Error named
// 'AbortError',
// anything else (c10::Error, std::exception) -> Error with the message's first lines.
#pragma once
#include <stdexcept>
#include <string>

namespace ibq {

// An argument of the wrong kind (a tensor where a number was expected, a wrong dtype).
struct TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// An argument of the right kind but outside its allowed values (shape, range, size).
struct ValueError : std::out_of_range {
  using std::out_of_range::out_of_range;
};

// A tensor argument of the wrong shape (a ValueError; the bindings give it the code ERR_IBQ_SHAPE).
struct ShapeError : ValueError {
  using ValueError::ValueError;
};

// A long job stopped because its AbortSignal fired.
struct Aborted : std::runtime_error {
  Aborted() : std::runtime_error("the operation was aborted") {}
};

}  // namespace ibq
