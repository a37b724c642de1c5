// tests/fuzz_replay_test.cpp: replays every file of fuzz/corpus/<target>/ through its fuzz target, so that
// the seeds and every crash or hang a fuzzer once found (kept there as regression files) run with the unit
// tests, under g++ and under ASan+UBSan, without libFuzzer. Each file runs in a child process with a time
// limit.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fuzz/targets.hpp"

namespace {

namespace fs = std::filesystem;

constexpr unsigned kSecondsPerFile = 10;  // a seed takes milliseconds, even under ASan

// Runs `fuzz` on `bytes` in a child: a trap, a sanitizer report or a hang fails only this file.
void replay_file(const fs::path& file, const std::string& bytes, int (*fuzz)(const uint8_t*, size_t)) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0) << "fork: " << std::strerror(errno);
  if (pid == 0) {
    ::alarm(kSecondsPerFile);
    int rc = fuzz(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ::_exit(rc == 0 ? 0 : 3);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* what = sig == SIGALRM  ? "timed out"
                       : sig == SIGILL ? "a property check failed"
                                       : ::strsignal(sig);
    ADD_FAILURE() << file.string() << ": " << what;
  } else {
    EXPECT_EQ(WEXITSTATUS(status), 0) << file.string() << ": failed (a sanitizer report is above)";
  }
}

void replay(const char* target, int (*fuzz)(const uint8_t*, size_t)) {
  fs::path dir = fs::path(POSTERN_FUZZ_CORPUS_DIR) / target;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file()) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 5u) << "too few seeds in " << dir;
  for (const fs::path& file : files) {
    std::ifstream in(file, std::ios::binary);
    ASSERT_TRUE(in) << file;
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    replay_file(file, bytes, fuzz);
  }
}

TEST(FuzzReplay, SmtpCommand) {
  replay("smtp_command", postern_fuzz_smtp_command);
}
TEST(FuzzReplay, SmtpData) {
  replay("smtp_data", postern_fuzz_smtp_data);
}
TEST(FuzzReplay, SmtpAddress) {
  replay("smtp_address", postern_fuzz_smtp_address);
}
TEST(FuzzReplay, MainCf) {
  replay("main_cf", postern_fuzz_main_cf);
}
TEST(FuzzReplay, MimeHeaders) {
  replay("mime_headers", postern_fuzz_mime_headers);
}
TEST(FuzzReplay, PasswdFile) {
  replay("passwd_file", postern_fuzz_passwd_file);
}
TEST(FuzzReplay, MimeStructure) {
  replay("mime_structure", postern_fuzz_mime_structure);
}
TEST(FuzzReplay, Mutf7) {
  replay("mutf7", postern_fuzz_mutf7);
}
TEST(FuzzReplay, ImapCommand) {
  replay("imap_command", postern_fuzz_imap_command);
}
TEST(FuzzReplay, Pop3Command) {
  replay("pop3_command", postern_fuzz_pop3_command);
}
TEST(FuzzReplay, QueueFile) {
  replay("queue_file", postern_fuzz_queue_file);
}
TEST(FuzzReplay, DkimCanon) {
  replay("dkim_canon", postern_fuzz_dkim_canon);
}
TEST(FuzzReplay, SmtpReply) {
  replay("smtp_reply", postern_fuzz_smtp_reply);
}
TEST(FuzzReplay, SmtpClient) {
  replay("smtp_client", postern_fuzz_smtp_client);
}
TEST(FuzzReplay, DnsRdata) {
  replay("dns_rdata", postern_fuzz_dns_rdata);
}
TEST(FuzzReplay, MtaStsPolicy) {
  replay("mta_sts_policy", postern_fuzz_mta_sts_policy);
}

}  // namespace
TEST(FuzzReplay, SaslExchange) {
  replay("sasl_exchange", postern_fuzz_sasl_exchange);
}
