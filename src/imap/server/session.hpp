// imap/server/session.hpp: one IMAP server session (RFC 3501 IMAP4rev1, RFC 9051 IMAP4rev2 and the
// extensions in capabilities()): whole commands in, responses out. No sockets: the net/ driver frames
// commands (imap/proto/reader), runs execute() on a worker thread (it does blocking Maildir I/O) and writes
// what it appended to `out`.
// State: not authenticated -> authenticated -> selected -> logout. A selected mailbox is a shared
// store::maildir::Mailbox; this session keeps its own view (sequence numbers -> UIDs, the last snapshot it
// reported) and reports others' changes (EXISTS, EXPUNGE, FETCH FLAGS) where RFC 9051 7 allows.
// Security: every argument is untrusted; mailbox names go through store::maildir::Folders, which refuses
// any that would leave the user's Maildir; errors are counted and the session ends after too many.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "auth/passdb.hpp"
#include "auth/sasl/exchange.hpp"
#include "config/config.hpp"
#include "imap/proto/parser.hpp"
#include "store/maildir/folders.hpp"
#include "store/maildir/mailbox.hpp"
#include "tls/info.hpp"

namespace postern::imap::server {

struct Settings {
  std::string hostname;
  char separator = '/';
  std::vector<std::string> default_folders;
  auth::sasl::Options sasl;  // before TLS (auth::sasl_options)
  bool starttls = false;     // STARTTLS is offered (ssl is not "no" and a certificate is loaded)
  uint64_t message_size_limit = 0;
  uint64_t mailbox_size_limit = 0;
  int max_bad_commands = 20;
  // METADATA (RFC 5464): imap_metadata, the limits per entry value and per mailbox, and the server's
  // /shared/admin and /shared/comment (mail_server_admin, mail_server_comment).
  bool metadata = true;
  uint64_t metadata_max_size = 65536;
  size_t metadata_max_entries = 256;
  std::string server_admin;
  std::string server_comment;

  // `tls_available`: the server has a certificate for this service.
  static Settings from_config(const config::Config& config, bool tls_available);
};

enum class Next {
  kCommand,       // read the next command
  kIdle,          // IDLE: wait for DONE (idle_done) or a change (idle_poll)
  kAuthenticate,  // AUTHENTICATE: read one line for auth_continue
  kCompress,      // COMPRESS DEFLATE: write the output, then compress both directions
  kStartTls,      // STARTTLS: write the output, drop unread input, run the handshake, then set_tls()
  kHandoff,       // a system user logged in as root: the session goes on in the user's own process
  kClose,         // write the output, then close
};

class Session {
 public:
  // Opens the account of an authenticated login name. `over_limit`: the user has too many sessions from
  // this address (mail_max_userip_connections); the driver counts them, and `slot` gives the count back when
  // the session lets it go: at LOGOUT, before the tagged OK, so that a client may log in again at once.
  struct LoginResult {
    std::optional<auth::Account> account;
    bool over_limit = false;
    std::shared_ptr<void> slot;
  };
  using Login = std::function<LoginResult(std::string_view user)>;

  // `credentials` checks passwords (LOGIN, AUTHENTICATE) and must outlive the session.
  Session(Settings settings, std::string client_ip, auth::sasl::Credentials& credentials, Login login);
  ~Session();

  std::string greeting() const;
  // Executes one whole command (as framed by CommandReader). Blocking.
  Next execute(std::string_view command, std::string& out);
  // The reader refused a command: line too long, literal too big.
  Next refuse(const std::string& tag, std::string_view why, std::string& out);
  // The reader refused a literal of `size` bytes in the command `name` (APPEND: NO [TOOBIG]; SETMETADATA:
  // NO [METADATA MAXSIZE]; anything else: BAD).
  Next literal_too_big(const std::string& tag, std::string_view name, uint64_t size, std::string& out);
  // IDLE: reports changes (call when woken); a line from the client ends IDLE.
  void idle_poll(std::string& out);
  Next idle_line(std::string_view line, std::string& out);
  Next auth_line(std::string_view line, std::string& out);
  // The server is shutting down, or the client was idle too long.
  void bye(std::string_view text, std::string& out) const;

  // Called (from any thread) when the selected mailbox changes; the driver wakes IDLE with it.
  void set_wake(std::function<void()> wake) { wake_ = std::move(wake); }
  // Sends what a long response has put so far into the `out` given to execute() and empties it (a FETCH of
  // many messages is written as it is made, not held whole in memory); false when the connection is gone.
  // Called on the thread that runs execute(), while execute() waits. Without one, `out` holds the whole
  // response.
  void set_output_drain(std::function<bool()> drain) { drain_ = std::move(drain); }
  const std::string& user() const { return account_ ? account_->user : empty_; }
  bool authenticated() const { return account_.has_value(); }
  // Bytes of literal data APPEND may send (message_size_limit).
  uint64_t append_limit() const { return settings_.message_size_limit; }
  std::string summary() const;
  // After kHandoff, in the user's process: answers the login command (tag) and goes on as that user.
  Next resume_login(const std::string& tag, auth::Account account, std::string& out);
  const std::string& handoff_tag() const { return handoff_tag_; }
  // Failed logins so far and the name of the last one (the driver throttles them: auth/throttle).
  int auth_failures() const { return auth_failures_; }
  const std::string& failed_login() const { return failed_login_; }

  const auth::Account& account() const { return *account_; }
  // The connection is now encrypted (implicit TLS, or STARTTLS done): nothing learned before counts.
  void set_tls(const tls::Info& info) { tls_ = info; }
  const tls::Info& tls() const { return tls_; }

 private:
  struct Selected;
  using Handler = Next (Session::*)(const proto::Command&, std::string&);

  static const std::map<std::string, std::pair<Handler, int>, std::less<>>& commands();
  std::string capabilities() const;

  // Not authenticated.
  Next cmd_capability(const proto::Command& c, std::string& out);
  Next cmd_noop(const proto::Command& c, std::string& out);
  Next cmd_logout(const proto::Command& c, std::string& out);
  Next cmd_login(const proto::Command& c, std::string& out);
  Next cmd_authenticate(const proto::Command& c, std::string& out);
  Next cmd_starttls(const proto::Command& c, std::string& out);
  Next cmd_id(const proto::Command& c, std::string& out);
  Next cmd_enable(const proto::Command& c, std::string& out);
  // Authenticated.
  Next cmd_select(const proto::Command& c, std::string& out);
  Next cmd_create(const proto::Command& c, std::string& out);
  Next cmd_delete(const proto::Command& c, std::string& out);
  Next cmd_rename(const proto::Command& c, std::string& out);
  Next cmd_subscribe(const proto::Command& c, std::string& out);
  Next cmd_list(const proto::Command& c, std::string& out);
  Next cmd_namespace(const proto::Command& c, std::string& out);
  Next cmd_status(const proto::Command& c, std::string& out);
  Next cmd_append(const proto::Command& c, std::string& out);
  Next cmd_idle(const proto::Command& c, std::string& out);
  Next cmd_getquota(const proto::Command& c, std::string& out);
  Next cmd_compress(const proto::Command& c, std::string& out);
  Next cmd_getmetadata(const proto::Command& c, std::string& out);
  Next cmd_setmetadata(const proto::Command& c, std::string& out);
  // Selected.
  Next cmd_check(const proto::Command& c, std::string& out);
  Next cmd_close(const proto::Command& c, std::string& out);
  Next cmd_expunge(const proto::Command& c, std::string& out);
  Next cmd_search(const proto::Command& c, std::string& out);
  Next cmd_fetch(const proto::Command& c, std::string& out);
  Next cmd_store(const proto::Command& c, std::string& out);
  Next cmd_copy(const proto::Command& c, std::string& out);
  Next cmd_sort(const proto::Command& c, std::string& out);
  Next cmd_thread(const proto::Command& c, std::string& out);

  // SEARCH keys (from c.args[first], after an optional CHARSET) evaluated over the view: matching UIDs,
  // ascending. Answers the command itself (and returns its Next) when the keys are invalid.
  struct Matched {
    uint64_t max_modseq = 0;
    bool has_modseq_key = false;
  };
  std::optional<Next> match(const proto::Command& c, size_t first, std::vector<uint32_t>& found,
                            Matched& info, std::string& out);
  std::optional<Next> match_keys(const proto::Command& c, size_t first, std::vector<uint32_t>& found,
                                 Matched& info, std::string& out);

  auth::sasl::Options sasl_options() const { return auth::sasl::for_connection(settings_.sasl, tls_); }
  // Answers the SASL exchange's outcome for the AUTHENTICATE command `tag`.
  Next sasl_outcome(const std::string& tag, auth::sasl::Outcome outcome, std::string& out);
  Next finish_login(const std::string& tag, std::string_view method, LoginResult result, std::string& out);
  // The password database could not answer: NO [UNAVAILABLE], not counted as a failed login.
  Next login_unavailable(const std::string& tag, std::string_view method, std::string& out);
  // The login succeeded: opens the user's mail and answers `tag`.
  Next open_account(const std::string& tag, std::string& out);
  Next bad(const std::string& tag, std::string_view text, std::string& out);
  Next ok(const std::string& tag, std::string_view text, std::string& out);
  Next no(const std::string& tag, std::string_view text, std::string& out);

  // Mailbox names: wire form (mUTF-7, or UTF-8 after ENABLE UTF8=ACCEPT) <-> internal UTF-8.
  std::optional<std::string> mailbox_name(const proto::Token& t) const;
  std::string wire_name(const std::string& name) const;
  std::string special_use(const std::string& name) const;
  Result<std::shared_ptr<store::maildir::Mailbox>> open_mailbox(const std::string& name, bool create);
  // METADATA (imap/server/metadata.cpp): the mailbox a command names ("" for the server), where its entries
  // are kept, and the entries the server computes for it (read-only). The error is a NO response's text.
  struct MetadataTarget;
  Result<MetadataTarget> metadata_target(const proto::Token& mailbox) const;
  void close_selected();
  // QRESYNC: the UIDs expunged since `modseq` (restricted to `known`, a UID set, when given), as a set.
  std::string vanished_since(uint64_t modseq, const proto::Token* known) const;

  // Reports what changed in the selected mailbox since the last report. Expunges only when allowed.
  void report_changes(std::string& out, bool allow_expunge, bool with_uid);
  // Message sequence numbers or UIDs of a set, as UIDs present in the view (sorted).
  std::optional<std::vector<uint32_t>> resolve(const proto::Token& set, bool uid);
  uint32_t seq_of(uint32_t uid) const;  // 0 when not in the view
  std::string flags_list(const store::maildir::MessageMeta& m, const store::maildir::Snapshot& snap,
                         bool recent) const;
  std::string flags_response(const store::maildir::Snapshot& snap) const;
  // Sends `out` through drain_ once it holds kDrainAt bytes or more; false when the connection is gone.
  bool drain(std::string& out);

  Settings settings_;
  std::string ip_;
  auth::sasl::Credentials& credentials_;
  Login login_;
  std::unique_ptr<auth::sasl::Exchange> sasl_;
  std::optional<auth::Account> account_;
  std::shared_ptr<void> login_slot_;  // LoginResult::slot
  std::unique_ptr<store::maildir::Folders> folders_;
  std::unique_ptr<Selected> selected_;
  std::function<void()> wake_;
  std::function<bool()> drain_;
  std::string pending_auth_tag_;
  bool utf8_ = false;
  bool condstore_ = false;
  bool qresync_ = false;
  bool rev2_ = false;  // ENABLE IMAP4rev2
  bool compressed_ = false;
  std::string handoff_tag_;
  int auth_failures_ = 0;
  std::string failed_login_;
  tls::Info tls_;
  int bad_count_ = 0;
  int commands_ = 0;
  std::string empty_;
  std::string idle_tag_;
};

// Maps a storage error to the IMAP response code and text (RFC 5530): the one place for IMAP.
std::string store_error_text(const store::StoreError& e);

}  // namespace postern::imap::server
