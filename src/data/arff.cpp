// The ARFF parser. The whole file is mapped into memory and walked line by line with string_views;
// numbers go through std::from_chars and nominal values are looked up in a hash table per attribute, by
// string_view, so a data row costs no allocation (only a quoted value with backslash escapes is copied,
// into a reused scratch string) and a value costs the same whether its attribute has 2 values or 80,000.
// Every error message starts with "read_arff: <path>:<line>:".
#include "fpi/data/arff.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace fpi::data {
namespace {

// Hashing string_views as strings hash, so tables keyed by std::string answer find(string_view) without
// making a string (C++20's heterogeneous look-up for unordered containers).
struct TextHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};
// A nominal attribute's values and their indices: the declaration's duplicate check and every row's
// look-up in one table.
using NominalIndex = std::unordered_map<std::string, std::size_t, TextHash, std::equal_to<>>;

// The file mapped read-only. On the VMs fpi is developed on, first-touching fresh memory costs about
// 15 us per 4 KiB page, so a fread of the 2.3 MB Bibtex file into a new buffer took 10-20 ms where
// mapping the page cache (populated in one call) takes about 1 ms. Truncating the file while it is
// being read is not supported (the mapping would fault).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    std::error_code ec;
    FPI_CHECK(std::filesystem::exists(path, ec), "read_arff: file '", path, "' does not exist");
    FPI_CHECK(std::filesystem::is_regular_file(path, ec), "read_arff: '", path, "' is not a regular file");
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    FPI_CHECK(fd >= 0, "read_arff: cannot open '", path, "': ", std::strerror(errno));
    struct stat info {};
    const bool sized = ::fstat(fd, &info) == 0;
    size_ = sized ? static_cast<std::size_t>(info.st_size) : 0;
    int flags = MAP_PRIVATE;
#ifdef MAP_POPULATE
    flags |= MAP_POPULATE;
#endif
    void* data = size_ > 0 ? ::mmap(nullptr, size_, PROT_READ, flags, fd, 0) : nullptr;
    const int error = errno;
    ::close(fd);
    FPI_CHECK(sized && data != MAP_FAILED, "read_arff: cannot read '", path, "': ", std::strerror(error));
    data_ = static_cast<const char*>(data);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::string_view text() const { return {data_, size_}; }

 private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

bool is_space(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// A '%' outside quotes starts a comment that runs to the end of the line.
std::string_view strip_comment(std::string_view line) {
  if (std::memchr(line.data(), '%', line.size()) == nullptr) return line;
  char quote = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quote) {
      if (c == '\\') ++i;
      else if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '%') {
      return line.substr(0, i);
    }
  }
  return line;
}

// from_chars plus the leading '+' it does not accept; the whole token must be the number, else
// invalid_argument. result_out_of_range means a number too large or too small for a double.
std::errc parse_double(std::string_view s, double& out) {
  if (s.starts_with('+')) {
    s.remove_prefix(1);
    if (s.starts_with('+') || s.starts_with('-')) return std::errc::invalid_argument;
  }
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return end == s.data() + s.size() ? ec : std::errc::invalid_argument;
}

// Messages quote the input, which may hold any byte: a NUL would cut the message short wherever it
// is read as a C string (what()), and other control characters would be invisible or garble a terminal.
std::string visible(std::string_view message) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(message.size());
  for (const char c : message) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (byte < 0x20 || byte == 0x7f) {
      out += {'\\', 'x', kHex[byte >> 4], kHex[byte & 0xf]};
    } else {
      out += c;
    }
  }
  return out;
}

std::string nominal_list(const ArffAttribute& attribute) {
  std::string out = "{";
  for (std::size_t i = 0; i < attribute.nominal_values.size(); ++i) {
    if (i == 8) return out + ", ... (" + std::to_string(attribute.nominal_values.size()) + " values)}";
    out += (i ? "," : "") + attribute.nominal_values[i];
  }
  return out + "}";
}

class Parser {
 public:
  Parser(std::string_view text, const ArffReadOptions& options, ArffData& out)
      : text_(text), options_(options), out_(out) {
    if (text_.starts_with("\xEF\xBB\xBF")) next_ = 3;  // a UTF-8 byte order mark
  }

  void run() {
    bool in_data = false;
    while (next_line()) {
      if (line_.empty()) continue;
      if (in_data) {
        if (line_.front() == '@')
          error("declaration '", line_.substr(0, line_.find_first_of(" \t")),
                "' after @data; every @attribute must come before @data");
        if (line_.front() == '{') {
          sparse_row();
        } else {
          dense_row();
        }
      } else {
        in_data = declaration();
      }
    }
    if (line_number_ == 0)
      fail("read_arff: ", out_.path, ": the file is empty; an ARFF file starts with '@relation <name>'");
    if (!in_data) error("the file ended before its @data section");
  }

 private:
  template <class... Parts>
  [[noreturn]] void error(const Parts&... parts) const {
    fail(visible(detail::concat("read_arff: ", out_.path, ":", line_number_, ": ", parts...)));
  }

  bool next_line() {
    if (next_ >= text_.size()) return false;
    const void* nl = std::memchr(text_.data() + next_, '\n', text_.size() - next_);
    const std::size_t end = nl ? static_cast<const char*>(nl) - text_.data() : text_.size();
    std::string_view line = text_.substr(next_, end - next_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    next_ = end + 1;
    ++line_number_;
    line_ = trim(strip_comment(line));
    pos_ = 0;
    return true;
  }

  void skip_spaces() {
    while (pos_ < line_.size() && is_space(line_[pos_])) ++pos_;
  }
  bool at_end() const { return pos_ >= line_.size(); }

  // A value or name: quoted with ' or " (backslash escapes), or bare up to a space or one of `stops`.
  // `quoted` tells the caller that "?" was written in quotes and so is not a missing value.
  std::string_view token(std::string_view stops, bool* quoted = nullptr) {
    const char quote = at_end() ? 0 : line_[pos_];
    if (quoted) *quoted = quote == '\'' || quote == '"';
    if (quote != '\'' && quote != '"') {
      const std::size_t start = pos_;
      while (pos_ < line_.size() && !is_space(line_[pos_]) && stops.find(line_[pos_]) == std::string_view::npos) ++pos_;
      return line_.substr(start, pos_ - start);
    }
    const std::size_t start = ++pos_;
    bool escaped = false;
    for (; pos_ < line_.size() && line_[pos_] != quote; ++pos_) {
      if (line_[pos_] == '\\') {
        escaped = true;
        ++pos_;
      }
    }
    if (pos_ >= line_.size()) error("unterminated quoted string ", line_.substr(start - 1));
    const std::string_view raw = line_.substr(start, pos_++ - start);
    if (!escaped) return raw;
    scratch_.clear();
    for (std::size_t i = 0; i < raw.size(); ++i) {
      char c = raw[i];
      if (c == '\\' && i + 1 < raw.size()) {
        c = raw[++i];
        c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
      }
      scratch_ += c;
    }
    return scratch_;
  }

  // Handles one header line; returns true on @data.
  bool declaration() {
    if (line_.front() != '@')
      error("expected @relation, @attribute or @data, but found '", line_.substr(0, 40),
            "'; data rows must follow the @data line");
    const std::string_view keyword = token("");
    skip_spaces();
    if (iequals(keyword, "@relation")) {
      if (!out_.relation.empty() || !out_.attributes.empty()) error("@relation must come once, before every @attribute");
      out_.relation = token("");
      if (out_.relation.empty()) error("@relation needs a name");
      expect_end("the relation name");
      return false;
    }
    if (iequals(keyword, "@attribute")) {
      if (out_.relation.empty()) error("@attribute before @relation; an ARFF file starts with '@relation <name>'");
      attribute();
      return false;
    }
    if (iequals(keyword, "@data")) {
      if (out_.attributes.empty()) error("@data before any @attribute");
      expect_end("@data");
      reserve_entries();
      return true;
    }
    error("unknown declaration '", keyword, "'; expected @relation, @attribute or @data");
  }

  // A row is at most one line and stores at most one entry more than it has commas, so with these
  // bounds the tables are never regrown (and copied) while parsing; they cost two vectorised counts.
  void reserve_entries() {
    const std::string_view rest = text_.substr(std::min(next_, text_.size()));
    const auto lines = static_cast<std::size_t>(std::count(rest.begin(), rest.end(), '\n')) + 1;
    const auto entries = static_cast<std::size_t>(std::count(rest.begin(), rest.end(), ',')) + lines;
    out_.row_begin.reserve(lines + 1);
    out_.columns.reserve(entries);
    out_.values.reserve(entries);
  }

  void expect_end(const char* after) {
    skip_spaces();
    if (!at_end()) error("unexpected text '", line_.substr(pos_), "' after ", after);
  }

  void attribute() {
    ArffAttribute attr;
    attr.name = token("{");
    if (attr.name.empty()) error("@attribute needs a name and a type");
    if (!names_.insert(attr.name).second) error("attribute '", attr.name, "' is declared twice");
    skip_spaces();
    if (!at_end() && line_[pos_] == '{') {
      attr.type = ArffType::Nominal;
      nominal_values(attr);
    } else {
      const std::string_view type = token("");
      if (type.empty()) error("attribute '", attr.name, "' has no type; expected numeric, real, integer or {v1,v2,...}");
      if (iequals(type, "numeric") || iequals(type, "real") || iequals(type, "integer")) {
        attr.type = ArffType::Numeric;
      } else if (iequals(type, "string") || iequals(type, "date") || iequals(type, "relational")) {
        error("attribute '", attr.name, "' has type '", type,
              "', which fpi does not read; only numeric, real, integer and nominal {...} attributes are supported");
      } else {
        error("attribute '", attr.name, "' has unknown type '", type,
              "'; expected numeric, real, integer or a nominal list {v1,v2,...}");
      }
      expect_end("the attribute type");
    }
    out_.attributes.push_back(std::move(attr));
  }

  void nominal_values(ArffAttribute& attr) {
    ++pos_;
    nominal_index_.resize(out_.attributes.size() + 1);
    NominalIndex& index = nominal_index_.back();
    for (;;) {
      skip_spaces();
      if (at_end()) error("nominal attribute '", attr.name, "': the value list is not closed with '}'");
      if (line_[pos_] == '}' && attr.nominal_values.empty()) error("nominal attribute '", attr.name, "' lists no values");
      std::string value(token(",}"));
      if (value.empty()) error("nominal attribute '", attr.name, "' has an empty value in its list");
      if (!index.try_emplace(value, attr.nominal_values.size()).second)
        error("nominal attribute '", attr.name, "' lists the value '", value, "' twice");
      attr.nominal_values.push_back(std::move(value));
      skip_spaces();
      if (at_end()) error("nominal attribute '", attr.name, "': the value list is not closed with '}'");
      const char c = line_[pos_++];
      if (c == '}') break;
      if (c != ',') error("nominal attribute '", attr.name, "': expected ',' or '}' after value '", attr.nominal_values.back(), "'");
    }
    expect_end("the nominal value list");
  }

  double value(std::int64_t column, std::string_view text, bool quoted) {
    const ArffAttribute& attr = out_.attributes[column];
    if (text.empty() && !quoted) error("empty value for attribute '", attr.name, "' (column ", column, ")");
    if (!quoted && text == "?") {
      if (!options_.allow_missing)
        error("missing value '?' for attribute '", attr.name, "' (column ", column,
              "); pass ArffReadOptions{.allow_missing = true} to read missing values as NaN");
      return std::numeric_limits<double>::quiet_NaN();
    }
    if (attr.type == ArffType::Nominal) {
      const NominalIndex& index = nominal_index_[static_cast<std::size_t>(column)];
      if (const auto found = index.find(text); found != index.end()) return static_cast<double>(found->second);
      error("'", text, "' is not a value of nominal attribute '", attr.name, "' ", nominal_list(attr));
    }
    double v = 0.0;
    const std::errc parsed = parse_double(text, v);
    if (parsed == std::errc::result_out_of_range)
      error("value '", text, "' is out of range for a double (attribute '", attr.name, "', column ", column, ")");
    if (parsed != std::errc())
      error("'", text, "' is not a number, but attribute '", attr.name, "' (column ", column, ") is numeric");
    // from_chars reads nan and inf in any spelling, but only '?' marks a missing value, and an infinite
    // feature would turn every loss and gradient it touches into NaN.
    if (!std::isfinite(v))
      error("'", text, "' is not a finite number, but attribute '", attr.name, "' (column ", column,
            ") is numeric; write '?' for a missing value");
    return v;
  }

  void store(std::int64_t column, double v) {
    if (v == 0.0) return;
    out_.columns.push_back(static_cast<std::int32_t>(column));
    out_.values.push_back(v);
  }

  void end_row() {
    out_.row_begin.push_back(static_cast<std::int64_t>(out_.columns.size()));
    ++out_.rows;
  }

  void sparse_row() {
    ++pos_;
    skip_spaces();
    if (!at_end() && line_[pos_] == '}') {
      ++pos_;
    } else {
      for (std::int64_t previous = -1;;) {
        previous = sparse_entry(previous);
        skip_spaces();
        if (at_end()) error("sparse row is not closed with '}'");
        const char c = line_[pos_++];
        if (c == '}') break;
        if (c != ',') error("expected ',' or '}' after the value of sparse index ", previous);
        skip_spaces();
      }
    }
    skip_spaces();
    if (!at_end())
      error("unexpected text '", line_.substr(pos_), "' after the sparse row's '}' (instance weights are not supported)");
    end_row();
  }

  // Reads "index value" and returns the index, which must exceed `previous`.
  std::int64_t sparse_entry(std::int64_t previous) {
    const std::int64_t n = out_.num_attributes();
    std::int64_t index = 0;
    const char* first = line_.data() + pos_;
    const auto [end, ec] = std::from_chars(first, line_.data() + line_.size(), index);
    if (ec != std::errc() || end == first)
      error("expected an attribute index at '", line_.substr(pos_, 20), "' in a sparse row");
    pos_ += end - first;
    if (index < 0 || index >= n)
      error("sparse index ", index, " is out of range: the file declares ", n, " attributes (indices 0..", n - 1, ")");
    if (index <= previous)
      error("sparse index ", index, " follows index ", previous, "; sparse indices must be strictly increasing");
    if (at_end() || !is_space(line_[pos_])) error("expected a space and a value after sparse index ", index);
    skip_spaces();
    bool quoted = false;
    const std::string_view text = token(",}", &quoted);
    store(index, value(index, text, quoted));
    return index;
  }

  void dense_row() {
    const std::int64_t n = out_.num_attributes();
    std::int64_t count = 0;
    for (;;) {
      skip_spaces();
      bool quoted = false;
      const std::string_view text = token(",", &quoted);
      if (count < n) store(count, value(count, text, quoted));
      ++count;
      skip_spaces();
      if (at_end()) break;
      if (line_[pos_] != ',') error("expected ',' after value ", count, " of a dense row, found '", line_.substr(pos_, 20), "'");
      ++pos_;
    }
    if (count != n) error("dense row has ", count, " values, expected ", n, " (one per attribute)");
    end_row();
  }

  std::string_view text_;
  const ArffReadOptions& options_;
  ArffData& out_;
  std::size_t next_ = 0;
  std::int64_t line_number_ = 0;
  std::string_view line_;
  std::size_t pos_ = 0;
  std::string scratch_;
  std::unordered_set<std::string> names_;
  std::vector<NominalIndex> nominal_index_;  // by column; empty for a numeric one, and none after the last nominal
};

}  // namespace

ArffData read_arff_text(std::string_view text, const std::string& name, const ArffReadOptions& options) {
  ArffData data;
  data.path = name;
  Parser(text, options, data).run();
  return data;
}

ArffData read_arff(const std::string& path, const ArffReadOptions& options) {
  const MappedFile file(path);
  return read_arff_text(file.text(), path, options);
}

}  // namespace fpi::data
