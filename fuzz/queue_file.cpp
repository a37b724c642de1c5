// fuzz/queue_file.cpp: libFuzzer target for the queue-file codec (queue/queue_file.hpp). Any bytes: decode()
// returns a value or an error and never reads outside the input. An accepted file re-encodes into a file that
// decodes to the same envelope and message, and its envelope alone decodes from the head of that file.

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/pieces.hpp"
#include "fuzz/targets.hpp"
#include "queue/queue_file.hpp"

int postern_fuzz_queue_file(const uint8_t* data, size_t size) {
  using namespace postern::queue;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto head_only = decode(input, true);
  auto whole = decode(input);
  if (!whole) return 0;
  // What decodes whole also decodes as an envelope, to the same envelope.
  POSTERN_FUZZ_CHECK(head_only.ok() && head_only->envelope == whole->envelope);
  POSTERN_FUZZ_CHECK(whole->message.size() == whole->envelope.size);
  POSTERN_FUZZ_CHECK(!whole->envelope.queue_id.empty() && !whole->envelope.recipients.empty());

  std::string again = encode(whole->envelope, whole->message);
  auto re = decode(again);
  POSTERN_FUZZ_CHECK(re.ok());
  POSTERN_FUZZ_CHECK(re->envelope == whole->envelope && re->message == whole->message);
  std::string head = encode_head(whole->envelope, whole->message.size());
  POSTERN_FUZZ_CHECK(again.substr(0, head.size()) == head);
  auto re_head = decode(head, true);
  POSTERN_FUZZ_CHECK(re_head.ok() && re_head->envelope == whole->envelope);
  return 0;
}

#ifdef POSTERN_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return postern_fuzz_queue_file(data, size);
}
#endif
