//===- options.cpp - Fuzzes kiln-run's command line -----------------------===//
//
// kiln-run's option parsing and the checks it makes before opening an
// artifact (parseCommandLine), on arbitrary argument lists: the input is
// split at NUL bytes into up to 32 arguments after "kiln-run". Any list may
// be refused with a message; none may crash, hang or trip a sanitizer.
// --prompt-ids' parser gets the whole input as one string too.
//
//===----------------------------------------------------------------------===//

#include "Options.h"

#include <string>
#include <vector>

using namespace kiln;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  std::vector<std::string> args{"kiln-run"};
  size_t start = 0;
  while (start <= text.size() && args.size() < 33) {
    size_t end = text.find('\0', start);
    if (end == std::string::npos)
      end = text.size();
    args.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  std::vector<char *> argv;
  for (std::string &a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  tools::Options options;
  (void)tools::parseCommandLine(static_cast<int>(args.size()), argv.data(),
                                &options);

  std::vector<int64_t> ids;
  std::string error;
  if (!tools::parseIds(text, &ids, &error) && error.empty())
    __builtin_trap(); // a refusal says why
  return 0;
}
