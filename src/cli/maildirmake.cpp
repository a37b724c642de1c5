// cli/maildirmake.cpp: `postern maildirmake [-f FOLDER] DIR`, like maildirmake.dovecot.
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "store/maildir/maildir.hpp"

namespace postern::cli {

int cmd_maildirmake(const Args& args) {
  std::string folder, dir;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-f" && i + 1 < args.size()) {
      folder = args[++i];
    } else if (args[i] == "-h" || args[i] == "--help") {
      fmt::print(
          "usage: postern maildirmake [-f FOLDER] DIR\n"
          "  creates the Maildir DIR (cur/ new/ tmp/, mode 0700), or with -f its Maildir++ folder .FOLDER\n");
      return 0;
    } else if (dir.empty() && !args[i].empty() && args[i][0] != '-') {
      dir = args[i];
    } else {
      fmt::print(stderr, "usage: postern maildirmake [-f FOLDER] DIR\n");
      return kExUsage;
    }
  }
  if (dir.empty()) {
    fmt::print(stderr, "usage: postern maildirmake [-f FOLDER] DIR\n");
    return kExUsage;
  }
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  store::maildir::Owner owner;
  Status st = Ok{};
  if (!folder.empty()) {
    st = store::maildir::make_folder(dir, folder, owner);
  } else {
    // "maildirmake DIR/.Sent" inside an existing Maildir makes a folder, as in the guide's steps.
    size_t slash = dir.rfind('/');
    std::string base = slash == std::string::npos ? dir : dir.substr(slash + 1);
    std::string parent = slash == std::string::npos ? "." : dir.substr(0, slash);
    if (base.size() > 1 && base[0] == '.' && base != "..") {
      st = store::maildir::make_folder(parent, base.substr(1), owner);
    } else {
      st = store::maildir::make_maildir(dir, owner);
    }
  }
  if (!st) {
    fmt::print(stderr, "postern: maildirmake: {}\n", st.error().message);
    return kExCantCreat;
  }
  return 0;
}

}  // namespace postern::cli
