// fuzz/main_cf.cpp: libFuzzer target for main.cf: parse_main_cf, edit_main_cf and Config::from_text ($name
// expansion, typed checks). Parsed entries re-emitted as "key = value" parse to the same entries, and after
// edit_main_cf(text, key, value) the text parses with that key set to exactly that value.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"

namespace {

using postern::config::Config;
using postern::config::edit_main_cf;
using postern::config::Entry;
using postern::config::parse_main_cf;

void check_edit(std::string_view text, const std::vector<Entry>& before, const std::string& key,
                std::string_view value) {
  std::string edited = edit_main_cf(text, key, value);
  auto after = parse_main_cf(edited, "main.cf");
  POSTERN_FUZZ_CHECK(after.ok());
  int seen = 0;
  for (const Entry& e : *after) {
    if (e.key != key) continue;
    ++seen;
    POSTERN_FUZZ_CHECK(e.value == value);
  }
  POSTERN_FUZZ_CHECK(seen == 1);
  // Every other key keeps its last value.
  for (const Entry& b : before) {
    if (b.key == key) continue;
    std::string last;
    for (const Entry& e : before)
      if (e.key == b.key) last = e.value;
    std::string now;
    for (const Entry& e : *after)
      if (e.key == b.key) now = e.value;
    POSTERN_FUZZ_CHECK(now == last);
  }
}

}  // namespace

int postern_fuzz_main_cf(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_main_cf(text, "main.cf");
  if (parsed.ok()) {
    std::string emitted;
    for (const Entry& e : *parsed) emitted += e.key + " = " + e.value + "\n";
    auto again = parse_main_cf(emitted, "main.cf");
    POSTERN_FUZZ_CHECK(again.ok());
    POSTERN_FUZZ_CHECK(again->size() == parsed->size());
    for (size_t i = 0; i < parsed->size(); ++i) {
      POSTERN_FUZZ_CHECK((*again)[i].key == (*parsed)[i].key);
      POSTERN_FUZZ_CHECK((*again)[i].value == (*parsed)[i].value);
    }
    if (!parsed->empty()) {
      check_edit(text, *parsed, parsed->front().key, "edited value");
      check_edit(text, *parsed, parsed->back().key, "");
    }
    check_edit(text, *parsed, "myhostname", "mail.example.org");
  } else {
    POSTERN_FUZZ_CHECK(!parsed.error().message.empty());
  }
  (void)edit_main_cf(text, "smtpd_banner", "$myhostname ESMTP");

  auto config = Config::from_text("/etc/postern", text, "main.cf");
  if (config.ok()) {
    for (const char* name : {"myhostname", "mydestination", "smtpd_banner", "myorigin", "message_size_limit"})
      (void)config->get(name, "smtp");
    (void)config->get_list("mydestination");
    (void)config->get_int("smtpd_timeout");
    (void)config->get_path("passwd_file");
  }
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_main_cf(data, size);
}
#endif
