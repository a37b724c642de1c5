#include "store/maildir/mailbox.hpp"
