// libFuzzer target for config reading: --set overrides, the JSON Schema (valijson) and fpi's own reader
// (parse_config). A rejected config is a correct outcome when it throws fpi::train::ConfigError whose
// message names the source and holds no raw control character; anything else is a finding: another
// exception, a sanitizer report, a hang, or an accepted config whose resolved form does not read back
// as itself. The input is a JSON text, optionally preceded by override lines "--set KEY=VALUE". The
// model is not built: a config may ask for any layer size, and allocating it is not the reader's job.
// Run it with tools/fuzz.sh config SECONDS; the seeds are the configs of models/.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fpi/train/config.hpp"
#include "fpi/train/json_reader.hpp"

namespace {

const std::string kName = "fuzz-config";

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_config: %s\n", what);
  std::abort();
}

void check_message(const fpi::train::ConfigError& e) {
  const std::string_view message = e.what();
  require(message.starts_with(kName) || message.starts_with("--set"), "an error message does not name the input");
  for (const char c : message)
    require(c == '\n' || static_cast<unsigned char>(c) >= 0x20, "an error message holds a control character");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(bytes), size);
  std::vector<std::string> overrides;
  while (text.starts_with("--set ")) {
    const std::size_t end = text.find('\n');
    if (end == std::string_view::npos) return 0;
    overrides.emplace_back(text.substr(6, end - 6));
    text.remove_prefix(end + 1);
  }
  nlohmann::json config = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) return 0;
  try {
    fpi::train::apply_overrides(config, overrides);
    const fpi::train::RunConfig parsed = fpi::train::parse_config(config, kName);
    const fpi::train::RunConfig again = fpi::train::parse_config(parsed.resolved, kName);
    require(again.resolved == parsed.resolved, "a resolved config does not read back as itself");
  } catch (const fpi::train::ConfigError& e) {
    check_message(e);
  }
  return 0;
}
