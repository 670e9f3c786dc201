// Errors as values: a kind, the side that caused it, and whether a retry may help.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace portico {

enum class ErrorSource { kNone, kDownstream, kUpstream, kInternal, kConfig };

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status error(std::string message, ErrorSource source = ErrorSource::kInternal,
                      bool retryable = false) {
    Status s;
    s.ok_ = false;
    s.message_ = std::move(message);
    s.source_ = source;
    s.retryable_ = retryable;
    return s;
  }
  bool ok() const { return ok_; }
  const std::string& message() const { return message_; }
  ErrorSource source() const { return source_; }
  bool retryable() const { return retryable_; }

 private:
  bool ok_ = true;
  bool retryable_ = false;
  ErrorSource source_ = ErrorSource::kNone;
  std::string message_;
};

// Result<T>: a value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT
  bool ok() const { return std::holds_alternative<T>(v_); }
  T& value() { return std::get<T>(v_); }
  const T& value() const { return std::get<T>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const Status& status() const { return std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace portico
