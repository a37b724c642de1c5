// mime/message_test.cpp: the MIME structure parser (offsets, line counts, types, parameters, limits, time
// bounds) and the decoders. The renderings built on it are compared with Dovecot's in
// imap/proto/message_view_test.cpp.

#include "mime/message.hpp"

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "base/strings.hpp"
#include "mime/headers.hpp"

namespace postern::mime {
namespace {

std::string_view body(std::string_view msg, const Part& p) {
  return msg.substr(p.body_begin, p.body_end - p.body_begin);
}
std::string_view header(std::string_view msg, const Part& p) {
  return msg.substr(p.header_begin, p.body_begin - p.header_begin);
}

TEST(MimeHeader, FieldsAndOnlyOneName) {
  std::string msg =
      "From: a@b\r\nSubject: one\r\n two\r\nX: y\r\n\tz\r\nsubject:three\r\n\r\nSubject: body\r\n";
  size_t body = 0;
  auto all = parse_header(msg, &body);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[1].value, "one two");
  EXPECT_EQ(all[2].value, "y z");
  EXPECT_EQ(msg.substr(body), "Subject: body\r\n");
  auto subjects = parse_header(msg, &body, "SUBJECT");
  ASSERT_EQ(subjects.size(), 2u);
  EXPECT_EQ(subjects[0].value, "one two");  // the folded lines of the fields left out are not joined in
  EXPECT_EQ(subjects[1].name, "subject");
  EXPECT_EQ(subjects[1].value, "three");
  EXPECT_EQ(msg.substr(body), "Subject: body\r\n");
  EXPECT_TRUE(parse_header(msg, nullptr, "Cc").empty());
}

TEST(MimeParse, PlainMessage) {
  std::string msg = "From: a@b\nSubject: x\n\nline 1\nline 2\n";
  Part p = parse(msg);
  EXPECT_EQ(p.header_begin, 0u);
  EXPECT_EQ(header(msg, p), "From: a@b\nSubject: x\n\n");
  EXPECT_EQ(body(msg, p), "line 1\nline 2\n");
  EXPECT_EQ(p.body_lines, 2u);
  EXPECT_EQ(p.type, "text");
  EXPECT_EQ(p.subtype, "plain");
  EXPECT_EQ(p.encoding, "7bit");
  EXPECT_TRUE(p.children.empty());
}

TEST(MimeParse, HeaderWithoutBlankLineAndEmptyMessage) {
  std::string msg = "From: a@b\nSubject: no body";
  Part p = parse(msg);
  EXPECT_EQ(p.body_begin, msg.size());
  EXPECT_EQ(p.body_end, msg.size());
  Part e = parse("");
  EXPECT_EQ(e.body_end, 0u);
  EXPECT_EQ(e.type, "text");
  // A message that starts with the blank line has an empty header.
  Part b = parse("\nbody\n");
  EXPECT_EQ(b.body_begin, 1u);
  EXPECT_EQ(b.body_lines, 1u);
}

TEST(MimeParse, MultipartOffsets) {
  std::string msg =
      "Content-Type: multipart/mixed; boundary=\"xx\"\n"
      "\n"
      "preamble\n"
      "--xx\n"
      "Content-Type: text/plain; charset=utf-8\n"
      "\n"
      "one\n"
      "--xx  \n"  // white space after the boundary
      "\n"
      "two\r\n"
      "two b\r\n"
      "--xx--\n"
      "epilogue\n";
  Part p = parse(msg);
  EXPECT_EQ(p.type, "multipart");
  EXPECT_EQ(p.subtype, "mixed");
  ASSERT_EQ(p.children.size(), 2u);
  const Part& a = p.children[0];
  const Part& b = p.children[1];
  EXPECT_EQ(header(msg, a), "Content-Type: text/plain; charset=utf-8\n\n");
  EXPECT_EQ(body(msg, a), "one");  // the line end before the boundary belongs to the boundary
  EXPECT_EQ(a.body_lines, 0u);
  EXPECT_EQ(a.params, (std::vector<std::pair<std::string, std::string>>{{"charset", "utf-8"}}));
  EXPECT_EQ(header(msg, b), "\n");
  EXPECT_EQ(body(msg, b), "two\r\ntwo b");
  EXPECT_EQ(b.body_lines, 1u);
  EXPECT_EQ(b.type, "text");  // the default in a multipart/mixed
  EXPECT_EQ(body(msg, p), msg.substr(msg.find("preamble")));
}

TEST(MimeParse, CrlfMessage) {
  std::string msg = "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n";
  Part p = parse(msg);
  ASSERT_EQ(p.children.size(), 1u);
  EXPECT_EQ(body(msg, p.children[0]), "x");
  EXPECT_EQ(header(msg, p.children[0]), "\r\n");
}

TEST(MimeParse, MissingClosingBoundaryAndOuterBoundaryEndsInner) {
  std::string msg =
      "Content-Type: multipart/mixed; boundary=outer\n\n"
      "--outer\n"
      "Content-Type: multipart/alternative; boundary=inner\n\n"
      "--inner\n\nA\n"
      "--inner\n\nB\n"
      "--outer\n\nC\n";
  Part p = parse(msg);
  ASSERT_EQ(p.children.size(), 2u);
  ASSERT_EQ(p.children[0].children.size(), 2u);
  EXPECT_EQ(body(msg, p.children[0].children[1]), "B");
  EXPECT_EQ(body(msg, p.children[1]), "C\n");  // runs to the end: no closing boundary
}

TEST(MimeParse, BoundaryPrefixAndNoBoundaryParameter) {
  // As Dovecot: a line that begins with "--boundary" is a boundary line, whatever follows.
  std::string msg = "Content-Type: multipart/mixed; boundary=b\n\n--bXYZ\n\none\n--b--\n";
  Part p = parse(msg);
  ASSERT_EQ(p.children.size(), 1u);
  EXPECT_EQ(body(msg, p.children[0]), "one");
  Part q = parse("Content-Type: multipart/mixed\n\n--b\n\nx\n");
  EXPECT_EQ(q.type, "multipart");
  EXPECT_TRUE(q.children.empty());
}

TEST(MimeParse, MessageRfc822AndDigest) {
  std::string msg =
      "Content-Type: multipart/digest; boundary=d\n\n"
      "--d\n\nSubject: inner\n\ninner body\n"
      "--d\nContent-Type: text/plain\n\nplain\n"
      "--d--\n";
  Part p = parse(msg);
  ASSERT_EQ(p.children.size(), 2u);
  const Part& m = p.children[0];
  EXPECT_EQ(m.type, "message");
  EXPECT_EQ(m.subtype, "rfc822");
  ASSERT_EQ(m.children.size(), 1u);
  EXPECT_EQ(m.children[0].header_begin, m.body_begin);
  EXPECT_EQ(header(msg, m.children[0]), "Subject: inner\n\n");
  EXPECT_EQ(body(msg, m.children[0]), "inner body");
  EXPECT_EQ(p.children[1].type, "text");
}

TEST(MimeParse, MessageGlobalIsALeafAsInDovecot) {
  std::string msg = "Content-Type: message/global\n\nSubject: x\n\ny\n";
  Part p = parse(msg);
  EXPECT_EQ(p.type, "message");
  EXPECT_EQ(p.subtype, "global");
  EXPECT_TRUE(p.children.empty());
}

TEST(MimeParse, TypesParametersAndEncoding) {
  std::string msg =
      "MIME-Version: 1.0\n"
      "Content-Type: TEXT/HTML (comment); CharSet=\"ISO-8859-1\";\n"
      " title*0*=utf-8''%E2%82%AC%20;\n"
      " title*1=\"rates\"\n"
      "Content-Transfer-Encoding: Base64\n\n";
  Part p = parse(msg);
  EXPECT_EQ(p.type, "text");
  EXPECT_EQ(p.subtype, "html");
  EXPECT_EQ(p.encoding, "base64");
  EXPECT_EQ(p.params, (std::vector<std::pair<std::string, std::string>>{{"charset", "ISO-8859-1"},
                                                                        {"title", "€ rates"}}));
  // Without MIME-Version or Content-Type, Content-* fields mean nothing.
  Part q = parse("Content-Transfer-Encoding: base64\n\naGk=\n");
  EXPECT_EQ(q.encoding, "7bit");
}

TEST(MimeParse, HeaderCutShortByABoundary) {
  std::string msg = "Content-Type: multipart/mixed; boundary=c\n\n--c\nContent-Type: text/plain\n--c--\n";
  Part p = parse(msg);
  ASSERT_EQ(p.children.size(), 1u);
  EXPECT_EQ(header(msg, p.children[0]), "Content-Type: text/plain");
  EXPECT_EQ(body(msg, p.children[0]), "");
}

std::string nested_multiparts(int depth) {
  std::string s = "Content-Type: multipart/mixed; boundary=\"b0\"\n\n";
  for (int i = 1; i < depth; ++i)
    s += "--b" + std::to_string(i - 1) + "\nContent-Type: multipart/mixed; boundary=\"b" + std::to_string(i) +
         "\"\n\n";
  s += "--b" + std::to_string(depth - 1) + "\n\nleaf\n";
  return s;
}

int tree_depth(const Part& p) {
  int d = 0;
  for (const Part& c : p.children) d = std::max(d, 1 + tree_depth(c));
  return d;
}

size_t count_parts(const Part& p) {
  size_t n = 1;
  for (const Part& c : p.children) n += count_parts(c);
  return n;
}

TEST(MimeParse, DepthLimit) {
  std::string msg = nested_multiparts(10);
  Limits limits;
  limits.max_depth = 4;
  Part p = parse(msg, limits);
  EXPECT_EQ(tree_depth(p), 3);
  // The part that would nest too deep is an opaque leaf.
  const Part* cur = &p;
  while (!cur->children.empty()) cur = &cur->children[0];
  EXPECT_EQ(cur->type, "application");
  EXPECT_EQ(cur->subtype, "octet-stream");
  EXPECT_EQ(tree_depth(parse(msg)), 10);
}

TEST(MimeParse, PartLimit) {
  std::string msg = "Content-Type: multipart/mixed; boundary=p\n\n";
  for (int i = 0; i < 20; ++i) msg += "--p\n\n" + std::to_string(i) + "\n";
  msg += "--p--\n";
  Limits limits;
  limits.max_parts = 10;
  Part p = parse(msg, limits);
  EXPECT_EQ(count_parts(p), 10u);
  // The last part holds the rest of the message: no further boundary line is recognised.
  EXPECT_EQ(p.children.back().body_end, msg.size());
}

double seconds_to_parse(const std::string& msg, Part* out) {
  auto t0 = std::chrono::steady_clock::now();
  *out = parse(msg);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(MimeParse, HundredThousandPartsParseQuickly) {
  std::string msg = "Content-Type: multipart/mixed; boundary=p\n\n";
  for (int i = 0; i < 100000; ++i) msg += "--p\nContent-Type: text/plain\n\nx\n";
  msg += "--p--\n";
  Part p;
  double s = seconds_to_parse(msg, &p);
  EXPECT_LT(s, 1.0);
  EXPECT_EQ(count_parts(p), Limits{}.max_parts);
  Limits unlimited;
  unlimited.max_parts = 1000000;
  auto t0 = std::chrono::steady_clock::now();
  Part all = parse(msg, unlimited);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
  EXPECT_EQ(all.children.size(), 100000u);
}

TEST(MimeParse, TenThousandDeepParsesQuickly) {
  std::string msg = nested_multiparts(10000);
  Part p;
  EXPECT_LT(seconds_to_parse(msg, &p), 1.0);
  EXPECT_EQ(tree_depth(p), Limits{}.max_depth - 1);
  std::string rfc;
  for (int i = 0; i < 10000; ++i) rfc += "Content-Type: message/rfc822\n\n";
  EXPECT_LT(seconds_to_parse(rfc, &p), 1.0);
  EXPECT_EQ(tree_depth(p), Limits{}.max_depth - 1);
}

TEST(MimeSplitHeader, FoldingAndOddLines) {
  std::string h = "Subject:  two\n  lines\r\nNoColon\nX-A :\tv\n \n\nBody: no\n";
  auto f = split_header(h);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].name, "Subject");
  EXPECT_EQ(f[0].value, "two\n  lines");
  EXPECT_EQ(f[0].begin, 0u);
  EXPECT_EQ(h.substr(f[0].begin, f[0].end - f[0].begin), "Subject:  two\n  lines\r\n");
  EXPECT_EQ(f[1].name, "NoColon");
  EXPECT_FALSE(f[1].colon);
  EXPECT_EQ(f[2].name, "X-A");
  EXPECT_EQ(f[2].value, "v\n ");
}

// A value joined from lines that end in CRLF is not a piece of the header; it must stay valid while the
// vector of fields grows (more fields than split_header reserves room for) and after the vector is moved.
TEST(MimeSplitHeader, JoinedValuesSurviveMoves) {
  std::string h = "A: x\r\n y\r\n z\r\nNoColon\r\n more\r\nB: one\n two\r\n three\n";
  for (int i = 0; i < 100; ++i) h += "F" + std::to_string(i) + ": v\n";
  h += "C: last\r\n\tline\r\n\r\nbody\r\n";
  std::vector<HeaderField> moved = split_header(h);
  std::vector<HeaderField> f = std::move(moved);
  ASSERT_EQ(f.size(), 104u);
  EXPECT_EQ(f[0].value, "x\n y\n z");
  EXPECT_EQ(f[1].name, "NoColon");
  EXPECT_EQ(f[1].value, "\n more");
  EXPECT_EQ(f[2].value, "one\n two\n three");  // LF, then CRLF, then the LF of the field's last line
  EXPECT_EQ(f[3].value, "v");
  EXPECT_EQ(f[103].value, "last\n\tline");
  EXPECT_EQ(h.substr(f[103].begin, f[103].end - f[103].begin), "C: last\r\n\tline\r\n");
}
TEST(MimeStructured, ContentTypeAndParameters) {
  auto v = parse_structured("text/plain; charset=\"a\\\"b\"; name*0=x; name*1=y", true);
  EXPECT_TRUE(v.ok);
  EXPECT_EQ(v.type, "text");
  EXPECT_EQ(v.subtype, "plain");
  EXPECT_EQ(v.params,
            (std::vector<std::pair<std::string, std::string>>{{"charset", "a\"b"}, {"name", "xy"}}));
  auto broken = parse_structured("text/plain garbage; charset=x", true);
  EXPECT_FALSE(broken.ok);
  EXPECT_EQ(broken.type, "");
  auto disp = parse_structured("attachment; filename*=utf-8''%E2%82%AC", false);
  EXPECT_EQ(disp.type, "attachment");
  EXPECT_EQ(disp.params,
            (std::vector<std::pair<std::string, std::string>>{{"filename*", "utf-8''%E2%82%AC"}}));
  EXPECT_EQ(parse_single_token(" base64 "), "base64");
  EXPECT_FALSE(parse_single_token("base64 x").has_value());
  EXPECT_EQ(parse_language("en-US, (c) de"), (std::vector<std::string>{"en-US", "de"}));
}

TEST(MimeAddresses, MailboxesGroupsAndBrokenInput) {
  auto a = parse_addresses("\"Doe, J\" <j@x.org>, team: a@b, c@d;, (c) e@f");
  ASSERT_EQ(a.size(), 6u);
  EXPECT_EQ(a[0].name, "Doe, J");
  EXPECT_EQ(a[0].mailbox, "j");
  EXPECT_EQ(a[0].domain, "x.org");
  EXPECT_EQ(a[1].mailbox, "team");  // group start
  EXPECT_FALSE(a[1].domain.has_value());
  EXPECT_EQ(a[3].mailbox, "c");
  EXPECT_FALSE(a[4].mailbox.has_value());  // group end
  EXPECT_EQ(a[5].mailbox, "e");
  auto b = parse_addresses("<>, just a name, x@");
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].mailbox, "MISSING_MAILBOX");
  EXPECT_EQ(b[1].name, "just a name");
  EXPECT_EQ(b[2].domain, "MISSING_DOMAIN");
  EXPECT_TRUE(parse_addresses("  ").empty());
}

TEST(MimeDecode, Base64IsLenient) {
  EXPECT_EQ(decode_transfer("aGVs\nbG8=", "base64"), "hello");
  EXPECT_EQ(decode_transfer("aG Vs!!bG8g\r\nd29y*bGQ=\n", "BASE64"), "hello world");
  EXPECT_EQ(decode_transfer("aGk=aGk=", "base64"), "hihi");
  EXPECT_EQ(decode_transfer("", "base64"), "");
}

TEST(MimeDecode, QuotedPrintable) {
  EXPECT_EQ(decode_transfer("a=3Db=3d=\nc  \nd=ZZ=", "quoted-printable"), "a=b=c\r\nd=ZZ");
  EXPECT_EQ(decode_transfer("Caf=C3=A9\r\n", "quoted-printable"), "Caf\xC3\xA9\r\n");
  EXPECT_EQ(decode_transfer("x", "7bit"), "x");
  EXPECT_EQ(decode_transfer("x", "8BIT"), "x");
  EXPECT_FALSE(decode_transfer("x", "x-uuencode").has_value());
}

TEST(MimeDecode, EncodedWords) {
  EXPECT_EQ(decode_header_value("=?UTF-8?B?SsO8cmdlbg==?= M"), "J\xC3\xBCrgen M");
  EXPECT_EQ(decode_header_value("=?iso-8859-1?q?Andr=E9?= Pirard"), "Andr\xC3\xA9 Pirard");
  // White space between adjacent encoded words goes; elsewhere it stays.
  EXPECT_EQ(decode_header_value("=?utf-8?q?a?=  =?utf-8?q?b?= c =?utf-8?q?_d?="), "ab c  d");
  EXPECT_EQ(decode_header_value("=?UTF-8?Q?=E2=82?= =?UTF-8?Q?=AC?="), "\xE2\x82\xAC");
  EXPECT_EQ(decode_header_value("=?KOI8-R?B?8NLJ18XU?="), "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82");
  EXPECT_EQ(decode_header_value("=?ISO-2022-JP?B?GyRCJEYkOSRIGyhC?="),
            "\xE3\x81\xA6\xE3\x81\x99\xE3\x81\xA8");
  EXPECT_EQ(decode_header_value("=?utf-8*en?q?lang?="), "lang");
  // Unknown charset: the bytes if they are UTF-8, else replacement characters.
  EXPECT_EQ(decode_header_value("=?x-nonesuch?q?caf=C3=A9?="), "caf\xC3\xA9");
  EXPECT_EQ(decode_header_value("=?x-nonesuch?q?caf=E9?="), "caf\xEF\xBF\xBD");
  EXPECT_EQ(decode_header_value("not =?encoded"), "not =?encoded");
  EXPECT_TRUE(valid_utf8(decode_header_value("raw \xff bytes")));
}

TEST(MimeDecode, ToUtf8) {
  EXPECT_EQ(to_utf8("caf\xe9", "ISO-8859-1"), "caf\xC3\xA9");
  EXPECT_EQ(to_utf8("\x80", "windows-1252"), "\xE2\x82\xAC");
  EXPECT_EQ(to_utf8("ok \xC3\xA9 \xC3", "utf-8"), "ok \xC3\xA9 \xEF\xBF\xBD");
  EXPECT_EQ(to_utf8("a\xff", "us-ascii"), "a\xEF\xBF\xBD");
  EXPECT_TRUE(valid_utf8(to_utf8("\x82\xa0\xff\xfe", "shift_jis")));
}

TEST(MimeFoldCase, Scripts) {
  EXPECT_EQ(fold_case("HeLLo 123"), "hello 123");
  EXPECT_EQ(fold_case("\xC3\x89T\xC3\x89"), "\xC3\xA9t\xC3\xA9");  // ÉTÉ
  EXPECT_EQ(fold_case("Stra\xC3\x9F"
                      "e"),
            "strasse");  // ß
  EXPECT_EQ(fold_case("\xC5\x81\xC3\x93"
                      "D\xC5\xB9"),
            "\xC5\x82\xC3\xB3"
            "d\xC5\xBA");                                                                        // ŁÓDŹ
  EXPECT_EQ(fold_case("\xCE\xA3\xCE\x99\xCF\x83\xCF\x82"), "\xCF\x83\xCE\xB9\xCF\x83\xCF\x83");  // ΣΙσς
  EXPECT_EQ(fold_case("\xD0\x94\xD0\x81\xD0\xB4"), "\xD0\xB4\xD1\x91\xD0\xB4");                  // ДЁд
  EXPECT_EQ(fold_case("\xC5\xB8"), "\xC3\xBF");                                                  // Ÿ
  EXPECT_EQ(fold_case("bad \xff byte"), "bad \xff byte");
}

TEST(MimeSearch, HeadersAndBody) {
  std::string msg =
      "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= AUS\n"
      "From: X <x@y>\n"
      "MIME-Version: 1.0\n"
      "Content-Type: multipart/mixed; boundary=b\n\n"
      "--b\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n"
      "K=D6LN\n"
      "--b\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\naGk=\n"
      "--b\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\nPGI+SGk8L2I+\n"
      "--b--\n";
  std::string h = searchable_headers(msg);
  EXPECT_NE(h.find("subject: gr\xC3\xBCsse aus\n"), std::string::npos) << h;
  EXPECT_NE(h.find("from: x <x@y>\n"), std::string::npos);
  std::string b = searchable_body(msg);
  EXPECT_NE(b.find("k\xC3\xB6ln"), std::string::npos) << b;
  EXPECT_NE(b.find("<b>hi</b>"), std::string::npos);
  EXPECT_EQ(b.find("hi\n"), std::string::npos);  // not the image
}

}  // namespace
}  // namespace postern::mime
