#include "mime/message.hpp"
