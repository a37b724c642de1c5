#include "base/mutf7.hpp"
