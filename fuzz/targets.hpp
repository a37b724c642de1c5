// fuzz/targets.hpp: the fuzz targets' entry points, one per parser. libFuzzer calls them through
// LLVMFuzzerTestOneInput (built with -DPOSTERN_LIBFUZZER); tests/fuzz_replay_test.cpp replays each seed
// corpus. Each returns 0 and aborts (__builtin_trap) when a parser breaks one of the properties its target
// checks.
#pragma once

#include <cstddef>
#include <cstdint>

int postern_fuzz_smtp_command(const uint8_t* data, size_t size);
int postern_fuzz_smtp_data(const uint8_t* data, size_t size);
int postern_fuzz_smtp_address(const uint8_t* data, size_t size);
int postern_fuzz_main_cf(const uint8_t* data, size_t size);
int postern_fuzz_mime_headers(const uint8_t* data, size_t size);
int postern_fuzz_passwd_file(const uint8_t* data, size_t size);
int postern_fuzz_mime_structure(const uint8_t* data, size_t size);
int postern_fuzz_mutf7(const uint8_t* data, size_t size);
int postern_fuzz_pop3_command(const uint8_t* data, size_t size);
int postern_fuzz_imap_command(const uint8_t* data, size_t size);
int postern_fuzz_sasl_exchange(const uint8_t* data, size_t size);
int postern_fuzz_queue_file(const uint8_t* data, size_t size);
int postern_fuzz_dkim_canon(const uint8_t* data, size_t size);
int postern_fuzz_smtp_reply(const uint8_t* data, size_t size);
int postern_fuzz_smtp_client(const uint8_t* data, size_t size);
int postern_fuzz_dns_rdata(const uint8_t* data, size_t size);
int postern_fuzz_mta_sts_policy(const uint8_t* data, size_t size);
