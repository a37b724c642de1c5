#include "store/maildir/folders.hpp"
