// Exception types of the pure libtorch layer. The bindings map them to JS error classes:
// TypeError -> TypeError, ValueError -> RangeError (ShapeError: with code ERR_IBQ_SHAPE), Aborted -> Error named
// 'AbortError',
// anything else (c10::Error, std::exception, InternalError) -> Error with the message's first lines.
//
// The validation contract: TypeScript checks arguments (types, unknown keys, ranges) and gives the user-facing
// TypeError/RangeError; the bindings only convert; this layer asserts its invariants with IBQ_CHECK, whose
// InternalError means a caller broke the contract (a bug), not a bad argument. TypeError/ValueError here remain
// for what only this layer can see: tensor shapes, dtypes and values.
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

// A broken invariant (see IBQ_CHECK): the bindings report it as a plain Error (ERR_IBQ_NATIVE).
struct InternalError : std::logic_error {
  using std::logic_error::logic_error;
};

// A long job stopped because its AbortSignal fired.
struct Aborted : std::runtime_error {
  Aborted() : std::runtime_error("the operation was aborted") {}
};

}  // namespace ibq

// Throws ibq::InternalError("internal error: <message>") unless `cond` holds; `message` (a std::string
// expression) is only evaluated when it does not.
#define IBQ_CHECK(cond, message)                                                   \
  do {                                                                             \
    if (!(cond)) throw ::ibq::InternalError(std::string("internal error: ") + (message)); \
  } while (0)
