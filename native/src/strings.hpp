// strings.hpp: results handed to JS are malloc'd C strings (freed with llmatic_string_free).
#pragma once

#include <cstdlib>
#include <cstring>
#include <string>

inline char * llmatic_dup_string(const std::string & s) {
    char * out = static_cast<char *>(std::malloc(s.size() + 1));
    if (out) std::memcpy(out, s.c_str(), s.size() + 1);
    return out;
}
