#include "imap/proto/message_view.hpp"
