// store/error.hpp: protocol-neutral storage errors. Each protocol maps them to its replies in one function
// (SMTP: smtp/server/session.cpp delivery_reply).
#pragma once

#include <string>

namespace postern::store {

enum class ErrorKind {
  kNone,
  kTemporary,      // an I/O error that may go away
  kNoSpace,        // the file system is full (ENOSPC, EDQUOT)
  kQuotaExceeded,  // mailbox_size_limit
  kPermanent,      // will not work on retry (e.g. the mailbox path is not a directory)
};

struct StoreError {
  ErrorKind kind = ErrorKind::kNone;
  std::string detail;  // for the log
  bool ok() const { return kind == ErrorKind::kNone; }
};

// Maps an errno value from a failed write to an error kind.
ErrorKind error_kind_from_errno(int err);

}  // namespace postern::store
