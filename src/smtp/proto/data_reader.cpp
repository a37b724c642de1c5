#include "smtp/proto/data_reader.hpp"

namespace postern::smtp::proto {

void CrlfToLf::feed(std::string_view in, std::string& out) {
  for (char c : in) {
    if (pending_cr_) {
      pending_cr_ = false;
      if (c == '\n') {
        out += '\n';
        continue;
      }
      out += '\r';
    }
    if (c == '\r') {
      pending_cr_ = true;
    } else {
      out += c;
    }
  }
}

void CrlfToLf::finish(std::string& out) {
  if (pending_cr_) out += '\r';
  pending_cr_ = false;
}

void DataReader::emit(std::string& out, std::string_view run) {
  uint64_t room = max_size_ == 0 ? run.size() : size_ >= max_size_ ? 0 : max_size_ - size_;
  size_ += run.size();
  if (run.size() > room) {
    too_big_ = true;
    run = run.substr(0, room);
  }
  out += run;
}

size_t DataReader::feed(std::string_view in, std::string& out) {
  size_t i = 0;
  while (i < in.size() && state_ != State::kDone) {
    char c = in[i++];
    switch (state_) {
      case State::kLineStart:
        if (c == '.') {
          state_ = State::kDot;
        } else if (c == '\r') {
          state_ = State::kCr;
        } else {
          emit(out, std::string_view(&c, 1));
          state_ = State::kMid;
        }
        break;
      case State::kDot:
        // A leading dot is stuffing unless the line is exactly ".".
        if (c == '\r') {
          state_ = State::kDotCr;
        } else {
          emit(out, std::string_view(&c, 1));
          state_ = State::kMid;
        }
        break;
      case State::kDotCr:
        if (c == '\n') {
          state_ = State::kDone;
        } else {
          emit(out, "\r");
          if (c == '\r') {
            state_ = State::kCr;
          } else {
            emit(out, std::string_view(&c, 1));
            state_ = State::kMid;
          }
        }
        break;
      case State::kMid:
        if (c == '\r') {
          state_ = State::kCr;
        } else {
          // The rest of the line up to its CR goes out in one piece.
          size_t cr = in.find('\r', i);
          if (cr == std::string_view::npos) cr = in.size();
          emit(out, in.substr(i - 1, cr - i + 1));
          i = cr;
        }
        break;
      case State::kCr:
        if (c == '\n') {
          emit(out, "\n");
          state_ = State::kLineStart;
        } else if (c == '\r') {
          emit(out, "\r");
        } else {
          emit(out, "\r");
          emit(out, std::string_view(&c, 1));
          state_ = State::kMid;
        }
        break;
      case State::kDone:
        break;
    }
  }
  return i;
}

}  // namespace postern::smtp::proto
