// imap/proto/metadata_test.cpp: entry names, GETMETADATA/SETMETADATA arguments (also framed by the reader
// cut at every byte), DEPTH selection, values in responses, and the metadata file (cut at every byte,
// damaged). Security: the refused names and damaged files here are the untrusted inputs the code must
// survive.

#include "imap/proto/metadata.hpp"

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "imap/proto/reader.hpp"

namespace postern::imap::proto {
namespace {

using namespace std::string_literals;

Command command(std::string_view text) {
  ParseResult r = parse_command(text);
  EXPECT_TRUE(r.ok) << text << ": " << r.error;
  return r.command;
}

std::string get_error(std::string_view text) {
  Command c = command(text);
  Result<GetMetadataArgs> r = parse_getmetadata(c);
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? std::string() : r.error().message;
}

std::string set_error(std::string_view text) {
  Command c = command(text);
  Result<SetMetadataArgs> r = parse_setmetadata(c);
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? std::string() : r.error().message;
}

// --- entry names (RFC 5464 3.2)

TEST(MetadataEntryName, ValidNamesAreLowerCased) {
  EXPECT_EQ(*metadata_entry_name("/private/comment"), "/private/comment");
  EXPECT_EQ(*metadata_entry_name("/Shared/Comment"), "/shared/comment");
  EXPECT_EQ(*metadata_entry_name("/PRIVATE"), "/private");
  EXPECT_EQ(*metadata_entry_name("/shared"), "/shared");
  EXPECT_EQ(*metadata_entry_name("/shared/vendor/x.example/a b"), "/shared/vendor/x.example/a b");
  EXPECT_TRUE(metadata_entry_name("/private/" + std::string(kMaxEntryName - 9, 'a')).ok());
}

TEST(MetadataEntryName, InvalidNames) {
  for (std::string_view bad : {"", "/", "private/comment", "/privatex", "/privat", "/other/comment",
                               "/private/", "/shared//x", "//private", "/private/a*", "/private/%",
                               "/private/a/", "/private/caf\xc3\xa9", "/private/a\tb", "/private/a\x7f"})
    EXPECT_FALSE(metadata_entry_name(bad).ok()) << bad;
  EXPECT_FALSE(metadata_entry_name("/private/\0x"s).ok());
  EXPECT_FALSE(metadata_entry_name("/private/" + std::string(kMaxEntryName, 'a')).ok());
}

// --- GETMETADATA (RFC 5464 4.2)

TEST(ParseGetMetadata, SingleEntryAndList) {
  Command c = command("a GETMETADATA INBOX /Private/Comment");
  auto r = parse_getmetadata(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->mailbox, &c.args[0]);
  EXPECT_EQ(r->entries, std::vector<std::string>{"/private/comment"});
  EXPECT_FALSE(r->maxsize);
  EXPECT_EQ(r->depth, MetadataDepth::kZero);

  Command d = command("a GETMETADATA \"\" (/shared/comment \"/private/x y\")");
  auto s = parse_getmetadata(d);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->mailbox->text(), "");
  EXPECT_EQ(s->entries, (std::vector<std::string>{"/shared/comment", "/private/x y"}));
}

TEST(ParseGetMetadata, Options) {
  Command c = command("a GETMETADATA (MAXSIZE 1024 DEPTH infinity) INBOX (/shared)");
  auto r = parse_getmetadata(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->maxsize, 1024u);
  EXPECT_EQ(r->depth, MetadataDepth::kInfinity);
  EXPECT_EQ(r->mailbox, &c.args[1]);
  Command d = command("a GETMETADATA (depth 1) INBOX /shared");
  EXPECT_EQ(parse_getmetadata(d)->depth, MetadataDepth::kOne);
  Command e = command("a GETMETADATA (DEPTH 1 DEPTH 0 MAXSIZE 0) INBOX /shared");
  EXPECT_EQ(parse_getmetadata(e)->depth, MetadataDepth::kZero);
  EXPECT_EQ(parse_getmetadata(e)->maxsize, 0u);
}

TEST(ParseGetMetadata, Errors) {
  EXPECT_EQ(get_error("a GETMETADATA INBOX"), "Invalid arguments.");
  EXPECT_EQ(get_error("a GETMETADATA"), "Invalid arguments.");
  EXPECT_EQ(get_error("a GETMETADATA INBOX /private/a /private/b"), "Invalid arguments.");
  EXPECT_EQ(get_error("a GETMETADATA (DEPTH 1) /private/a"), "Invalid arguments.");
  EXPECT_EQ(get_error("a GETMETADATA INBOX ()"), "Missing entry names");
  EXPECT_EQ(get_error("a GETMETADATA INBOX (/private/a (x))"), "Entry name isn't astring");
  EXPECT_EQ(get_error("a GETMETADATA INBOX /other"), "Entry name must begin with /private or /shared");
  EXPECT_EQ(get_error("a GETMETADATA INBOX /private/*"), "Entry name can't contain '*' or '%'");
  EXPECT_EQ(get_error("a GETMETADATA (DEPTH 2) INBOX /private"), "Invalid value for DEPTH option");
  EXPECT_EQ(get_error("a GETMETADATA (DEPTH) INBOX /private"), "Invalid GETMETADATA options");
  EXPECT_EQ(get_error("a GETMETADATA (MAXSIZE -1) INBOX /private"), "Invalid value for MAXSIZE option");
  EXPECT_EQ(get_error("a GETMETADATA (MAXSIZE \"10\") INBOX /private"), "Invalid value for MAXSIZE option");
  EXPECT_EQ(get_error("a GETMETADATA (MAXSIZE 99999999999999999999999) INBOX /private"),
            "Invalid value for MAXSIZE option");
  EXPECT_EQ(get_error("a GETMETADATA (FOO 1) INBOX /private"), "Unknown GETMETADATA option");
  EXPECT_EQ(get_error("a GETMETADATA () INBOX /private"), "Empty GETMETADATA options");
}

// --- SETMETADATA (RFC 5464 4.3)

TEST(ParseSetMetadata, ValuesNilAndLiteral8) {
  Command c = command(
      "a SETMETADATA INBOX (/Private/Comment \"My comment\" /shared/x NIL /shared/y atom "
      "/shared/bin ~{3}\r\na\0b /shared/n \"NIL\")"s);
  auto r = parse_setmetadata(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->mailbox, &c.args[0]);
  ASSERT_EQ(r->entries.size(), 5u);
  EXPECT_EQ(r->entries[0].first, "/private/comment");
  EXPECT_EQ(r->entries[0].second, "My comment");
  EXPECT_EQ(r->entries[1].first, "/shared/x");
  EXPECT_FALSE(r->entries[1].second.has_value());
  EXPECT_EQ(r->entries[2].second, "atom");
  EXPECT_EQ(r->entries[3].second, "a\0b"s);
  EXPECT_EQ(r->entries[4].second, "NIL");  // a quoted "NIL" is a string
}

TEST(ParseSetMetadata, Errors) {
  EXPECT_EQ(set_error("a SETMETADATA INBOX"), "Invalid arguments.");
  EXPECT_EQ(set_error("a SETMETADATA INBOX /private/a x"), "Invalid arguments.");
  EXPECT_EQ(set_error("a SETMETADATA (x) (/private/a x)"), "Invalid arguments.");
  EXPECT_EQ(set_error("a SETMETADATA INBOX ()"), "Missing entries");
  EXPECT_EQ(set_error("a SETMETADATA INBOX (/private/a)"), "Entry value missing");
  EXPECT_EQ(set_error("a SETMETADATA INBOX (/private/a (x))"), "Entry value can't be a list");
  EXPECT_EQ(set_error("a SETMETADATA INBOX (/private/a/ x)"), "Entry name can't end with '/'");
  EXPECT_EQ(set_error("a SETMETADATA INBOX ((x) x)"), "Entry name isn't astring");
  EXPECT_EQ(set_error("a SETMETADATA INBOX (comment x)"), "Entry name must begin with '/'");
}

// A SETMETADATA with literals, framed by the reader cut at every byte: always the same entries.
TEST(ParseSetMetadata, FramedAtEverySplit) {
  const std::string wire = "t1 SETMETADATA \"\" (/shared/a {5+}\r\nx\r\nyz /private/b ~{2+}\r\n\0\0)\r\n"s;
  for (size_t cut = 0; cut <= wire.size(); ++cut) {
    CommandReader reader(ReaderLimits{});
    reader.append(wire.substr(0, cut));
    CommandReader::Status st = reader.next();
    if (st != CommandReader::Status::kCommand) reader.append(wire.substr(cut));
    // After a non-synchronizing literal's announcement next() may want a second call with its bytes there.
    for (int calls = 0; st == CommandReader::Status::kNeedMore && calls < 4; ++calls) st = reader.next();
    ASSERT_EQ(st, CommandReader::Status::kCommand) << cut;
    Command c = command(reader.command());
    auto r = parse_setmetadata(c);
    ASSERT_TRUE(r.ok()) << cut;
    ASSERT_EQ(r->entries.size(), 2u);
    EXPECT_EQ(r->entries[0].second, "x\r\nyz") << cut;
    EXPECT_EQ(r->entries[1].second, "\0\0"s) << cut;
  }
}

// --- DEPTH

TEST(MetadataBelow, ChildrenAndDescendants) {
  MetadataEntries e = {{"/private/a", "1"},   {"/private/a/b", "2"}, {"/private/a/b/c", "3"},
                       {"/private/a/d", "4"}, {"/private/ab", "5"},  {"/shared/a", "6"}};
  EXPECT_TRUE(metadata_below(e, "/private/a", MetadataDepth::kZero).empty());
  EXPECT_EQ(metadata_below(e, "/private/a", MetadataDepth::kOne),
            (std::vector<std::string>{"/private/a/b", "/private/a/d"}));
  EXPECT_EQ(metadata_below(e, "/private/a", MetadataDepth::kInfinity),
            (std::vector<std::string>{"/private/a/b", "/private/a/b/c", "/private/a/d"}));
  EXPECT_EQ(metadata_below(e, "/private", MetadataDepth::kOne),
            (std::vector<std::string>{"/private/a", "/private/ab"}));
  EXPECT_EQ(metadata_below(e, "/shared", MetadataDepth::kInfinity), std::vector<std::string>{"/shared/a"});
  EXPECT_TRUE(metadata_below(e, "/shared/a", MetadataDepth::kInfinity).empty());
}

// --- values in responses

TEST(MetadataValue, QuotedLiteralOrLiteral8) {
  std::string out;
  append_metadata_value(out, "plain \"text\"");
  EXPECT_EQ(out, "\"plain \\\"text\\\"\"");
  out.clear();
  append_metadata_value(out, "two\r\nlines");
  EXPECT_EQ(out, "{10}\r\ntwo\r\nlines");
  out.clear();
  append_metadata_value(out, "a\0b"s);
  EXPECT_EQ(out, "~{3}\r\na\0b"s);
}

// --- the file

TEST(MetadataFile, RoundTrip) {
  MetadataEntries e = {{"/private/comment", "hello"},
                       {"/shared/bin", "\0\n\r\nx 1\n"s},
                       {"/shared/empty", ""},
                       {"/shared/with space", "v"}};
  std::string text = encode_metadata_file(e);
  EXPECT_EQ(text.substr(0, 38), "postern-metadata 1\n/private/comment 5\n");
  MetadataFile f = decode_metadata_file(text, 100);
  EXPECT_FALSE(f.damaged) << f.error;
  EXPECT_EQ(f.entries, e);
  EXPECT_EQ(encode_metadata_file({}), "postern-metadata 1\n");
  EXPECT_TRUE(decode_metadata_file("postern-metadata 1\n", 100).entries.empty());
  MetadataFile empty = decode_metadata_file("", 100);
  EXPECT_FALSE(empty.damaged);
  EXPECT_TRUE(empty.entries.empty());
}

// Cut at every byte: never more than the entries before the cut, damaged unless the cut falls between
// records.
TEST(MetadataFile, TruncatedAtEveryByte) {
  MetadataEntries e = {{"/private/a", "one\n"}, {"/private/b", ""}, {"/shared/c", "three"}};
  std::string text = encode_metadata_file(e);
  std::vector<size_t> boundaries;
  for (size_t n = 1; n <= e.size(); ++n) {
    MetadataEntries first(e.begin(), std::next(e.begin(), static_cast<long>(n)));
    boundaries.push_back(encode_metadata_file(first).size());
  }
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    MetadataFile f = decode_metadata_file(std::string_view(text).substr(0, cut), 100);
    size_t whole = 0;
    while (whole < boundaries.size() && boundaries[whole] <= cut) ++whole;
    EXPECT_EQ(f.entries.size(), whole) << cut;
    for (const auto& [name, value] : f.entries) EXPECT_EQ(e.at(name), value) << cut;
    bool at_boundary =
        cut == 0 || cut == 19 || std::find(boundaries.begin(), boundaries.end(), cut) != boundaries.end();
    EXPECT_EQ(f.damaged, !at_boundary) << cut;
  }
}

TEST(MetadataFile, DamagedFilesKeepWhatCameBefore) {
  const std::string head = "postern-metadata 1\n/private/a 1\nx\n";
  for (std::string bad :
       {"/private/b 5\nab\n"s, "/private/b\nx\n"s, "/private/b x\nx\n"s, "/private/b -1\nx\n"s,
        "/Private/b 1\nx\n"s, "/other/b 1\nx\n"s, "/private/a 1\nx\n"s, "/private/0 1\nx\n"s,
        "/private/b 1\nxy"s, "/private/b 99999999999999999999999\nx\n"s, std::string(5000, 'a')}) {
    MetadataFile f = decode_metadata_file(head + bad, 100);
    EXPECT_TRUE(f.damaged) << bad;
    EXPECT_FALSE(f.error.empty());
    EXPECT_EQ(f.entries, (MetadataEntries{{"/private/a", "x"}})) << bad;
  }
  MetadataFile wrong = decode_metadata_file("dovecot\n/private/a 1\nx\n", 100);
  EXPECT_TRUE(wrong.damaged);
  EXPECT_TRUE(wrong.entries.empty());
}

TEST(MetadataFile, AtMostMaxEntries) {
  MetadataEntries e = {{"/private/a", "1"}, {"/private/b", "2"}, {"/private/c", "3"}};
  MetadataFile f = decode_metadata_file(encode_metadata_file(e), 2);
  EXPECT_TRUE(f.damaged);
  EXPECT_EQ(f.entries.size(), 2u);
  EXPECT_FALSE(decode_metadata_file(encode_metadata_file(e), 3).damaged);
}

}  // namespace
}  // namespace postern::imap::proto
