// Status propagation helpers used across qeff (absl::Status / absl::StatusOr).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define QEFF_CONCAT_INNER_(a, b) a##b
#define QEFF_CONCAT_(a, b) QEFF_CONCAT_INNER_(a, b)

// Returns early from the enclosing function when `expr` is not OK.
#define QEFF_RETURN_IF_ERROR(expr)                 \
  do {                                             \
    ::absl::Status qeff_status_ = (expr);          \
    if (!qeff_status_.ok()) return qeff_status_;   \
  } while (0)

// `QEFF_ASSIGN_OR_RETURN(auto x, FunctionReturningStatusOr());`
#define QEFF_ASSIGN_OR_RETURN(lhs, expr) \
  QEFF_ASSIGN_OR_RETURN_IMPL_(QEFF_CONCAT_(qeff_statusor_, __LINE__), lhs, expr)
#define QEFF_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()
