#include "delivery/mta_sts_policy.hpp"

#include <gtest/gtest.h>

namespace postern::delivery {
namespace {

using State = HttpResponseReader::State;

TEST(StsRecord, ExactlyOneStsV1RecordWithAnId) {
  EXPECT_EQ(sts_record_id({"v=STSv1; id=20160831085700Z;"}), "20160831085700Z");
  EXPECT_EQ(sts_record_id({"v=spf1 -all", "v=STSv1;id=abc", "other"}), "abc");
  EXPECT_EQ(sts_record_id({"v=STSv1; id=a1 ;\text_1=x-y"}), "a1");
  EXPECT_EQ(sts_record_id({"v=STSv1; ext=1; id=first; id=second"}), "first");
  EXPECT_FALSE(sts_record_id({}));
  EXPECT_FALSE(sts_record_id({"v=STSv1; id=a", "v=STSv1; id=b"}));  // two records: no policy
  EXPECT_FALSE(sts_record_id({"v=STSv1; id=a", "v=STSv1; id=a"}));
  for (const char* bad : {"v=STSv1;", "v=STSv1; ext=1", "v=STSv1; id=", "v=STSv1; id=a-b", "v=STSv1; id=a b",
                          "v=STSv1; id="
                          "123456789012345678901234567890123",
                          "v=STSv1; id=a;; ext=1", "v=STSv1; id=a; =x", "v=STSv1; id=a; ext=",
                          "v=STSv1; id=a; -x=1", "V=STSv1; id=a", "v=STSv1 id=a", "v=STSv1"})
    EXPECT_FALSE(sts_record_id({bad})) << bad;
}

constexpr std::string_view kPolicy =
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET\r\nmx: "
    "backupmx.example.com\r\n"
    "max_age: 604800\r\n";

TEST(StsPolicy, ParsesTheFieldsOfRfc8461) {
  auto p = parse_sts_policy(kPolicy);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->mode, StsMode::kEnforce);
  EXPECT_EQ(p->max_age, 604800u);
  EXPECT_EQ(p->mx, (std::vector<std::string>{"mail.example.com", "*.example.net", "backupmx.example.com"}));
  // LF lines, no final line end, unknown fields, white space after the colon and at the end, repeats.
  p = parse_sts_policy(
      "mode:testing \nversion:\tSTSv1\nfoo_bar: any thing\nmx: a.example\nmode: enforce\n"
      "max_age: 0\nmax_age: 9");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->mode, StsMode::kTesting);
  EXPECT_EQ(p->max_age, 0u);
  p = parse_sts_policy("version: STSv1\nmode: none\nmax_age: 99999999\n");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->mode, StsMode::kNone);
  EXPECT_EQ(p->max_age, kMaxStsAge);  // cut to a year
  EXPECT_TRUE(p->mx.empty());
}

TEST(StsPolicy, RefusesBrokenPolicies) {
  for (const char* bad : {
           "",
           "mode: enforce\nmx: a.example\nmax_age: 1\n",                   // no version
           "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",   // wrong version
           "version: STSv1\nmx: a.example\nmax_age: 1\n",                  // no mode
           "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n",   // modes are case-sensitive
           "version: STSv1\nmode: enforce\nmx: a.example\n",               // no max_age
           "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",  //
           "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n",  // 11 digits
           "version: STSv1\nmode: enforce\nmax_age: 1\n",                           // enforce without mx
           "version: STSv1\nmode: testing\nmx: a..example\nmax_age: 1\n",           //
           "version: STSv1\nmode: testing\nmx: a.*.example\nmax_age: 1\n",          //
           "version: STSv1\nmode: testing\nmx: -a.example\nmax_age: 1\n",           //
           "version: STSv1\nmode: testing\nmx: [192.0.2.1]\nmax_age: 1\n",          //
           "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 1\njunk\n",      // not name: value
           "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 1\n_x: y\n",     // bad field name
       })
    EXPECT_FALSE(parse_sts_policy(bad).ok()) << bad;
  std::string many = "version: STSv1\nmode: enforce\nmax_age: 1\n";
  for (int i = 0; i <= 100; ++i) many += "mx: mx" + std::to_string(i) + ".example\n";
  EXPECT_FALSE(parse_sts_policy(many).ok());
  EXPECT_FALSE(parse_sts_policy(std::string(kMaxPolicyBody + 1, '\n')).ok());
}

TEST(StsPolicy, MxPatterns) {
  auto p = parse_sts_policy(kPolicy);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(sts_mx_matches(*p, "mail.example.com"));
  EXPECT_TRUE(sts_mx_matches(*p, "MAIL.example.com."));
  EXPECT_TRUE(sts_mx_matches(*p, "mx1.example.net"));
  EXPECT_FALSE(sts_mx_matches(*p, "example.net"));      // the wildcard needs one label
  EXPECT_FALSE(sts_mx_matches(*p, "a.b.example.net"));  // and only one
  EXPECT_FALSE(sts_mx_matches(*p, ".example.net"));
  EXPECT_FALSE(sts_mx_matches(*p, "xexample.net"));
  EXPECT_FALSE(sts_mx_matches(*p, "mail.example.com.evil"));
  EXPECT_FALSE(sts_mx_matches(*p, "other.example.com"));
}

TEST(StsPolicy, ChecksPerMode) {
  auto p = parse_sts_policy(kPolicy);
  ASSERT_TRUE(p.ok());
  StsCheck c = sts_check(*p, "example.com", "mail.example.com");
  EXPECT_TRUE(c.require_pkix);
  EXPECT_FALSE(c.refuse || c.report);
  EXPECT_EQ(c.problem, "");
  c = sts_check(*p, "example.com", "mx.evil.example");
  EXPECT_TRUE(c.refuse && c.require_pkix);
  EXPECT_EQ(c.problem, "mx.evil.example is not an MX host of the MTA-STS policy of example.com");
  p->mode = StsMode::kTesting;
  c = sts_check(*p, "example.com", "mx.evil.example");
  EXPECT_FALSE(c.refuse || c.require_pkix);
  EXPECT_TRUE(c.report);
  EXPECT_NE(c.problem.find("testing mode"), std::string::npos);
  EXPECT_EQ(sts_check(*p, "example.com", "mail.example.com").problem, "");
  p->mode = StsMode::kNone;
  c = sts_check(*p, "example.com", "mx.evil.example");
  EXPECT_FALSE(c.refuse || c.require_pkix || c.report);
  EXPECT_EQ(c.problem, "");
}

TEST(StsPolicy, DomainNames) {
  EXPECT_TRUE(sts_domain_ok("example.com"));
  EXPECT_TRUE(sts_domain_ok("xn--bcher-kva.example"));
  for (const char* bad : {"", "Example.com", "example.com.", ".example", "a..b", "../etc", "a/b",
                          "b\xc3\xbc.de", "[192.0.2.1]", "-a.example", "a-.example"})
    EXPECT_FALSE(sts_domain_ok(bad)) << bad;
}

// The reader fed `response` split at every byte (two pieces), and whole: the same result each time.
HttpResponseReader read_split(std::string_view response) {
  HttpResponseReader whole;
  if (whole.feed(response) == State::kMore) whole.end();
  for (size_t cut = 0; cut <= response.size(); ++cut) {
    HttpResponseReader r;
    r.feed(response.substr(0, cut));
    if (r.feed(response.substr(cut)) == State::kMore) r.end();
    EXPECT_EQ(r.state(), whole.state()) << "cut at " << cut;
    EXPECT_EQ(r.status(), whole.status()) << "cut at " << cut;
    EXPECT_EQ(r.body(), whole.body()) << "cut at " << cut;
    EXPECT_EQ(r.content_type(), whole.content_type()) << "cut at " << cut;
  }
  HttpResponseReader bytes;  // and one byte at a time
  for (char c : response) bytes.feed(std::string_view(&c, 1));
  if (bytes.state() == State::kMore) bytes.end();
  EXPECT_EQ(bytes.state(), whole.state());
  EXPECT_EQ(bytes.body(), whole.body());
  return whole;
}

TEST(HttpResponse, ContentLength) {
  std::string response =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(kPolicy.size()) +
      "\r\n\r\n" + std::string(kPolicy) + "ignored after";
  auto r = read_split(response);
  ASSERT_EQ(r.state(), State::kDone) << r.error();
  EXPECT_EQ(r.status(), 200);
  EXPECT_EQ(r.content_type(), "text/plain");
  EXPECT_EQ(r.body(), kPolicy);
  auto p = parse_sts_policy(r.body());
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->mx.size(), 3u);
}

TEST(HttpResponse, ChunkedAndInterim) {
  std::string response =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\n"
      "transfer-encoding: Chunked\r\n\r\n5\r\nversi\r\n18;name=value\r\non: STSv1\nmode: testing\n\r\n"
      "0\r\nTrailer: x\r\n\r\n";
  auto r = read_split(response);
  ASSERT_EQ(r.state(), State::kDone) << r.error();
  EXPECT_EQ(r.body(), "version: STSv1\nmode: testing\n");
  EXPECT_EQ(r.content_type(), "text/plain; charset=utf-8");
}

TEST(HttpResponse, BodyUntilCloseWithLfLines) {
  auto r = read_split("HTTP/1.0 200 OK\nContent-Type: text/plain\n\nversion: STSv1\n");
  ASSERT_EQ(r.state(), State::kDone) << r.error();
  EXPECT_EQ(r.body(), "version: STSv1\n");
}

TEST(HttpResponse, OtherStatusesEndAfterTheHeader) {
  auto r = read_split("HTTP/1.1 301 Moved Permanently\r\nLocation: https://x.example/\r\n\r\n<html>...");
  ASSERT_EQ(r.state(), State::kDone);
  EXPECT_EQ(r.status(), 301);
  EXPECT_EQ(r.body(), "");
}

TEST(HttpResponse, Errors) {
  std::string big = std::to_string(kMaxPolicyBody + 1);
  for (const std::string& bad : std::vector<std::string>{
           "",                                                                            // closed at once
           "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",                          // closed early
           "SMTP/1.1 200 OK\r\n\r\n",                                                     //
           "HTTP/1.1 2000 OK\r\n\r\n",                                                    //
           "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",                                //
           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",         //
           "HTTP/1.1 200 OK\r\nContent-Length: " + big + "\r\n\r\n",                      // too large
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",                 //
           "HTTP/1.1 200 OK\r\nX: y\r\n folded\r\n\r\n",                                  //
           "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",                                         //
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",                 //
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",  // no CRLF after
                                                                                          // data
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10001\r\n",              // chunk too large
           "HTTP/1.1 200 OK\r\nX: " + std::string(kMaxHttpHeader, 'a'),                   // header too large
           "HTTP/1.1 200 OK\r\n\r\n" + std::string(kMaxPolicyBody + 1, 'a'),  // close-delimited, too large
       }) {
    HttpResponseReader r;
    if (r.feed(bad) == State::kMore) r.end();
    EXPECT_EQ(r.state(), State::kFailed) << bad.substr(0, 80);
    EXPECT_FALSE(r.error().empty());
    EXPECT_TRUE(r.body().empty());
  }
  // Chunks that add up to more than 64 KiB.
  HttpResponseReader r;
  r.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  std::string chunk = "8000\r\n" + std::string(0x8000, 'a') + "\r\n";
  r.feed(chunk);
  EXPECT_EQ(r.feed(chunk), State::kMore);
  EXPECT_EQ(r.feed("1\r\n"), State::kFailed);
}

}  // namespace
}  // namespace postern::delivery
