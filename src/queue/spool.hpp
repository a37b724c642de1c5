// queue/spool.hpp: the outbound queue on disk, laid out as Postfix's: queue_directory/{incoming, active,
// deferred, hold, corrupt}/<queue id>, one queue file (queue/queue_file.hpp) per message, a message's state
// being the directory it is in, changed by rename. A message is written into incoming/ and fsync'd, then
// renamed into deferred/ and the directory fsync'd: only then is it queued (and may the SMTP server say 250).
// A file left in incoming/ by a crash was never acknowledged. The queue manager and `postern queue` change a
// message's state with move() and remove(); a deferred file's mtime is its next attempt time (touch()).
// Security: queue ids are ours (hex), never taken from a client; files are mode 0600, directories 0700.
// Thread-safe: every call works on its own file.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "queue/queue_file.hpp"
#include "store/error.hpp"

namespace postern::queue {

enum class QueueState { kIncoming, kActive, kDeferred, kHold, kCorrupt };
std::string_view state_name(QueueState s);

// True for a queue id as new_queue_id() makes them (upper-case hex digits, at most 32): never a path.
bool valid_queue_id(std::string_view queue_id);

struct ListedMessage {
  QueueState state;
  QueueFile envelope;
};

class Spool {
 public:
  explicit Spool(std::string queue_directory) : dir_(std::move(queue_directory)) {}

  // Creates the state directories (mode 0700) that do not exist yet.
  Status create_directories() const;
  std::string path(QueueState state, std::string_view queue_id) const;
  std::string directory(QueueState state) const;
  // Every state directory.
  std::vector<std::string> directories() const;

  // Writes q + the message (the concatenation of its parts) into incoming/ and fsyncs it. On failure `error`
  // says why and nothing is left behind.
  bool write_incoming(const QueueFile& q, const std::vector<std::string_view>& message,
                      store::StoreError& error) const;
  // incoming/ -> deferred/, durably. On failure the incoming file is removed.
  bool commit(std::string_view queue_id, store::StoreError& error) const;
  // Removes the incoming file (the transaction failed elsewhere).
  void abort(std::string_view queue_id) const;

  // The queued messages (active, deferred, hold), oldest first. A file that does not decode is named in
  // `problems` and skipped.
  std::vector<ListedMessage> list(std::vector<std::string>& problems) const;
  // The queue ids in one state directory (none when it does not exist), unsorted, without reading the files.
  // Other names (a file being rewritten, ID.tmp) are not messages and are left out, here and by list().
  Result<std::vector<std::string>> ids(QueueState state) const;

  // State changes, each durable on return (rename, then fsync of both directories; unlink, then fsync of
  // the directory; concurrent changes share the fsyncs). They answer true when done, false when there is no
  // such file in `from`/`state` (another process moved or removed it first), and an Error naming the file
  // otherwise. The file keeps its mode, owner and mtime. `durable` = false: the rename only, for the queue
  // manager's moves between deferred/ and active/, where a crash may leave the file in either (both are
  // delivered from after a restart).
  Result<bool> move(std::string_view queue_id, QueueState from, QueueState to, bool durable = true) const;
  Result<bool> remove(std::string_view queue_id, QueueState state) const;
  // Sets the file's mtime: in deferred/, the time of the next delivery attempt (due when mtime <= now).
  Result<bool> touch(std::string_view queue_id, QueueState state,
                     std::chrono::system_clock::time_point when) const;
  // A file that does not decode: moves it from `state` into corrupt/, where nothing reads it again, and
  // logs the move with `why` (as Postfix's qmgr: "corrupt queue file"). Errors are logged too.
  void quarantine(std::string_view queue_id, QueueState state, std::string_view why) const;

 private:
  std::string dir_;
};

}  // namespace postern::queue
