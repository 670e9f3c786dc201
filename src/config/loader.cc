#include "config/loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/hash.h"

namespace portico::config {
namespace {

Diagnostic fileDiagnostic(const std::string& file, std::string message, int line = 0, int col = 0,
                          Severity severity = Severity::kError) {
  Diagnostic d;
  d.file = file;
  d.line = line;
  d.col = col;
  d.severity = severity;
  d.message = std::move(message);
  return d;
}

// Event sink for the pre-pass of checkParserProgress(): records where documents start.
class DocumentStarts : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { start_ = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
  const YAML::Mark& start() const { return start_; }

 private:
  YAML::Mark start_;
};

constexpr size_t kMaxDocumentsPerFile = 1'000'000;

// yaml-cpp 0.7's LoadAll() loops forever, allocating, when a document starts with a token
// the parser does not consume (",", or "!tag ," ...; jbeder/yaml-cpp#1040, fixed upstream
// by #1319). This pass runs the parser without building nodes and reports such input as a
// syntax error; it throws YAML::ParserException like LoadAll for other syntax errors.
void checkParserProgress(const std::string& text) {
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentStarts events;
  int previous_pos = -1;
  size_t documents = 0;
  while (parser.HandleNextDocument(events)) {
    if (events.start().pos == previous_pos)
      throw YAML::ParserException(events.start(), "unexpected token at the start of a document");
    previous_pos = events.start().pos;
    if (++documents > kMaxDocumentsPerFile)
      throw YAML::ParserException(events.start(), "too many documents");
  }
}

// yaml-cpp 0.7 accepts a quoted scalar that is never closed: it runs to the end of the input
// and swallows the documents after it. Finds one: a ' or " that opens a scalar (at the start
// of a line, after "key: ", "- ", "[", "{", "," or "? ") with no closing quote before the end
// of `text`. Block scalar contents (after "|" or ">") and comments are skipped.
std::optional<YAML::Mark> unterminatedQuote(std::string_view text) {
  const size_t n = text.size();
  size_t i = 0;
  int line = 0;
  size_t line_start = 0;
  size_t indent = 0;
  int block_indent = -1;  // indentation of the line that opened a block scalar; -1: none
  bool at_line_start = true;
  char prev = '\n';  // last significant character before the current one
  bool space_before = true;
  size_t content_end = 0;  // end of the line's content (before a comment)
  bool in_comment = false;
  // "|", ">", "|-", ">+2"... at the end of a line's content opens a block scalar.
  auto endsWithBlockIndicator = [&](size_t from, size_t to) {
    while (to > from && (text[to - 1] == ' ' || text[to - 1] == '\t')) --to;
    size_t b = to;
    while (b > from && (text[b - 1] == '-' || text[b - 1] == '+' ||
                        (text[b - 1] >= '1' && text[b - 1] <= '9'))) {
      --b;
    }
    if (b == from || (text[b - 1] != '|' && text[b - 1] != '>')) return false;
    return b - 1 == from || text[b - 2] == ' ';
  };
  while (i < n) {
    if (at_line_start) {
      line_start = i;
      indent = 0;
      while (i + indent < n && text[i + indent] == ' ') ++indent;
      size_t p = i + indent;
      bool blank = p >= n || text[p] == '\n' || text[p] == '#';
      if (block_indent >= 0 && (blank || static_cast<int>(indent) > block_indent)) {
        size_t eol = text.find('\n', i);
        if (eol == std::string_view::npos) break;
        i = eol + 1;
        ++line;
        continue;
      }
      block_indent = -1;
      prev = '\n';
      space_before = true;
      in_comment = false;
      at_line_start = false;
      i = p;
      continue;
    }
    char c = text[i];
    if (c == '\n') {
      if (!in_comment) content_end = i;
      if (endsWithBlockIndicator(line_start + indent, content_end))
        block_indent = static_cast<int>(indent);
      ++line;
      ++i;
      at_line_start = true;
      continue;
    }
    if (in_comment) {
      ++i;
      continue;
    }
    if (c == '#' && space_before) {
      in_comment = true;
      content_end = i;
      ++i;
      continue;
    }
    bool opens =
        (c == '"' || c == '\'') && (prev == '\n' || prev == '[' || prev == '{' || prev == ',' ||
                                    ((prev == ':' || prev == '-' || prev == '?') && space_before));
    if (opens) {
      YAML::Mark start;
      start.line = line;
      start.column = static_cast<int>(i - line_start);
      start.pos = static_cast<int>(i);
      size_t k = i + 1;
      bool closed = false;
      while (k < n) {
        char d = text[k];
        if (c == '"' && d == '\\' && k + 1 < n) {
          if (text[k + 1] == '\n') ++line;
          k += 2;
          continue;
        }
        if (d == '\n') ++line;
        if (d == c) {
          if (c == '\'' && k + 1 < n && text[k + 1] == '\'') {
            k += 2;
            continue;
          }
          closed = true;
          break;
        }
        ++k;
      }
      if (!closed) return start;
      i = k + 1;
      prev = c;
      space_before = false;
      continue;
    }
    if (c != ' ' && c != '\t') {
      prev = c;
      space_before = false;
    } else {
      space_before = true;
    }
    ++i;
  }
  return std::nullopt;
}

// Shifts a diagnostic computed relative to a document's text to the document's place.
Diagnostic placed(const Diagnostic& d, const std::string& file, int line_offset) {
  Diagnostic out = d;
  out.file = file;
  if (out.line > 0) out.line += line_offset;
  return out;
}

}  // namespace

// One document's text, parsed: resources and diagnostics with lines relative to its start.
struct Loader::Chunk {
  bool syntax_error = false;
  std::vector<Resource> resources;  // marks relative; line_offset 0
  std::vector<Diagnostic> diagnostics;
};

namespace {

// Parses the text of one or more documents (marks relative to its start).
std::shared_ptr<Loader::Chunk> parseChunk(const std::string& text, const std::string& file) {
  auto chunk = std::make_shared<Loader::Chunk>();
  std::vector<YAML::Node> documents;
  try {
    checkParserProgress(text);
    if (std::optional<YAML::Mark> quote = unterminatedQuote(text))
      throw YAML::ParserException(*quote, "quoted scalar without its closing quote");
    std::istringstream stream(text);
    documents = YAML::LoadAll(stream);
  } catch (const YAML::Exception& e) {
    int line = e.mark.is_null() ? 0 : e.mark.line + 1;
    int col = e.mark.is_null() ? 0 : e.mark.column + 1;
    chunk->diagnostics.push_back(fileDiagnostic(file, "invalid YAML: " + e.msg, line, col));
    chunk->syntax_error = true;
    return chunk;
  } catch (const std::exception& e) {
    chunk->diagnostics.push_back(fileDiagnostic(file, std::string("invalid YAML: ") + e.what()));
    chunk->syntax_error = true;
    return chunk;
  }
  for (const YAML::Node& doc : documents) {
    if (isAbsent(doc)) continue;  // "---" followed by nothing
    try {
      YAML::Mark where;
      std::string problem = checkDocumentLimits(doc, &where);
      if (!problem.empty()) {
        int line = where.is_null() ? 0 : where.line + 1;
        int col = where.is_null() ? 0 : where.column + 1;
        chunk->diagnostics.push_back(fileDiagnostic(file, problem, line, col));
        continue;
      }
      if (std::optional<Resource> res = decodeResource(doc, file, &chunk->diagnostics))
        chunk->resources.push_back(std::move(*res));
    } catch (const std::exception& e) {
      // yaml-cpp node access throws only on misuse; keep the gateway alive regardless.
      YAML::Mark m = markOf(doc);
      chunk->diagnostics.push_back(
          fileDiagnostic(file, std::string("cannot decode document: ") + e.what(),
                         m.is_null() ? 0 : m.line + 1, m.is_null() ? 0 : m.column + 1));
    }
  }
  return chunk;
}

// Reads a whole file; on failure returns false with a message. One buffer of the file's
// size (a stream copy would grow and copy it several times: ~1 ms per MB).
bool readFile(const std::string& path, std::string* out, std::string* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = std::strerror(errno);
    return false;
  }
  struct stat st;
  size_t size = ::fstat(fd, &st) == 0 && st.st_size > 0 ? static_cast<size_t>(st.st_size) : 0;
  out->clear();
  out->resize(size + 1);  // one byte more: the end of the file is seen without another call
  size_t have = 0;
  for (;;) {
    if (have == out->size()) out->resize(out->size() * 2 + 4096);
    ssize_t n = ::read(fd, out->data() + have, out->size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = "read error";
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    have += static_cast<size_t>(n);
  }
  ::close(fd);
  out->resize(have);
  return true;
}

bool isYamlName(const std::filesystem::path& p) {
  std::string name = p.filename().string();
  if (name.empty() || name[0] == '.') return false;
  std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml";
}

bool isDocumentStart(std::string_view line) {
  if (!line.starts_with("---")) return false;
  if (line.size() == 3) return true;
  char c = line[3];
  return c == ' ' || c == '\t' || c == '\r';
}

}  // namespace

namespace {

// Lines ("\n") in text[from, to), eight bytes at a time.
int countLines(std::string_view text, size_t from, size_t to) {
  constexpr uint64_t kLow7 = 0x7F7F7F7F7F7F7F7Full;
  constexpr uint64_t kNewlines = 0x0A0A0A0A0A0A0A0Aull;
  int lines = 0;
  size_t i = from;
  for (; i + 8 <= to; i += 8) {
    uint64_t word;
    std::memcpy(&word, text.data() + i, 8);
    uint64_t x = word ^ kNewlines;  // a zero byte where a newline was
    // The high bit of each byte set exactly where x has a zero byte.
    uint64_t zero = ~(((x & kLow7) + kLow7) | x | kLow7);
    // One bit per newline byte, at the byte's high bit: moved down and summed by a multiply.
    lines += static_cast<int>(((zero >> 7) * 0x0101010101010101ull) >> 56);
  }
  for (; i < to; ++i) lines += text[i] == '\n';
  return lines;
}

}  // namespace

namespace {

// Where the documents of `text` start (byte offsets; the first is 0), as splitDocuments().
std::vector<size_t> documentOffsets(std::string_view text) {
  std::vector<size_t> starts = {0};
  // A directive is a line starting with '%' (a rare byte: memchr finds the candidates).
  bool directives = false;
  for (size_t at = text.find('%'); at != std::string_view::npos && !directives;
       at = text.find('%', at + 1)) {
    directives = at == 0 || text[at - 1] == '\n';
  }
  if (!directives) {
    // No directive (the common case): only "\n---" needs looking at.
    auto next = [&](size_t from) -> size_t {
      const char* p = text.data();
      size_t n = text.size();
      size_t i = from;
#if defined(__SSE2__)
      // 16 positions at a time: a newline whose next byte is '-'.
      const __m128i newline = _mm_set1_epi8('\n'), dash = _mm_set1_epi8('-');
      for (; i + 17 <= n; i += 16) {
        __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 1));
        unsigned mask = static_cast<unsigned>(
            _mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, newline), _mm_cmpeq_epi8(b, dash))));
        for (; mask != 0; mask &= mask - 1) {
          size_t at = i + static_cast<size_t>(__builtin_ctz(mask));
          if (at + 4 <= n && p[at + 2] == '-' && p[at + 3] == '-') return at;
        }
      }
#endif
      if (i >= n) return std::string_view::npos;
      const void* at = memmem(p + i, n - i, "\n---", 4);
      return at == nullptr ? std::string_view::npos
                           : static_cast<size_t>(static_cast<const char*>(at) - p);
    };
    for (size_t pos = next(0); pos != std::string_view::npos; pos = next(pos + 1)) {
      size_t after = pos + 4;
      if (after < text.size() && text[after] != '\n' && text[after] != ' ' && text[after] != '\t' &&
          text[after] != '\r') {
        continue;
      }
      starts.push_back(pos + 1);
    }
    return starts;
  }
  bool directive = false;  // the current part has a "%" line: keep it with the next document
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    std::string_view l = text.substr(pos, eol == std::string_view::npos ? eol : eol - pos);
    if (pos > 0 && isDocumentStart(l)) {
      if (!directive) starts.push_back(pos);
      directive = false;
    } else if (l.starts_with('%')) {
      directive = true;
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  return starts;
}

}  // namespace

std::vector<std::pair<size_t, int>> splitDocuments(std::string_view text) {
  std::vector<std::pair<size_t, int>> out;
  int line = 0;
  size_t counted = 0;
  for (size_t offset : documentOffsets(text)) {
    line += countLines(text, counted, offset);
    counted = offset;
    out.emplace_back(offset, line);
  }
  return out;
}

Loader::Loader() = default;
Loader::~Loader() = default;

namespace {

// A fast 64-bit hash of a document's text.
uint64_t textHash(std::string_view s) { return fastHash(s); }

}  // namespace

void Loader::loadFileText(std::string_view text, const std::string& file, LoadResult* result) {
  DocList* before = nullptr;
  if (auto it = previous_.find(file); it != previous_.end()) before = &it->second;
  DocList& now = current_[file];
  auto start = std::chrono::steady_clock::now();
  std::vector<size_t> starts = documentOffsets(text);
  auto split = std::chrono::steady_clock::now();
  timings_.split_ms += std::chrono::duration<double, std::milli>(split - start).count();
  struct AddTime {
    std::chrono::steady_clock::time_point from;
    double* to;
    ~AddTime() {
      *to += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - from)
                 .count();
    }
  } documents_time{split, &timings_.documents_ms};
  if (starts.size() > kMaxDocumentsPerFile) {
    int line = countLines(text, 0, starts[kMaxDocumentsPerFile]);
    result->diagnostics.push_back(
        fileDiagnostic(file, "invalid YAML: too many documents", line + 1, 1));
    result->outcome = LoadOutcome::kSyntaxError;
    return;
  }
  now.reserve(starts.size());
  // The text of a previous document (moved to `now` once reused).
  auto previousText = [&](const Doc& d) -> std::string_view {
    return d.moved_to != UINT32_MAX ? std::string_view(now[d.moved_to].text)
                                    : std::string_view(d.text);
  };
  // Previous documents by hash (open addressing, index + 1; 0 empty), built at the first
  // document that is not where it was: an unchanged file needs no table.
  std::vector<uint32_t> table;
  size_t mask = 0;
  auto findBefore = [&](std::string_view piece, uint64_t h) -> Doc* {
    if (before == nullptr || before->empty()) return nullptr;
    if (table.empty()) {
      size_t size = 16;
      while (size < before->size() * 2) size *= 2;
      table.assign(size, 0);
      mask = size - 1;
      for (uint32_t j = 0; j < before->size(); ++j) {
        size_t k = (*before)[j].hash & mask;
        while (table[k] != 0) k = (k + 1) & mask;
        table[k] = j + 1;
      }
    }
    for (size_t k = h & mask; table[k] != 0; k = (k + 1) & mask) {
      Doc& d = (*before)[table[k] - 1];
      if (d.hash == h && previousText(d) == piece) return &d;
    }
    return nullptr;
  };
  // Documents parsed by this load, by hash: the same new text twice in one file parses once.
  std::unordered_multimap<uint64_t, uint32_t> parsed_now;
  size_t next_before = 0;  // where the next document was in the previous load, if unmoved
  size_t first_resource = result->resources.size();
  size_t first_diagnostic = result->diagnostics.size();
  result->resources.reserve(first_resource + starts.size());
  int offset = 0;  // lines before the document: the sum of the previous documents' lines
  for (size_t i = 0; i < starts.size(); ++i) {
    size_t end = i + 1 < starts.size() ? starts[i + 1] : text.size();
    std::string_view piece = text.substr(starts[i], end - starts[i]);
    if (i > 0) offset += now.back().lines;
    Doc* old = nullptr;
    uint64_t h = 0;
    if (before != nullptr && next_before < before->size()) {
      // Where it was: compared without hashing it.
      Doc& d = (*before)[next_before];
      if (d.moved_to == UINT32_MAX && d.text == piece) {
        old = &d;
        h = d.hash;
      }
    }
    if (old == nullptr) {
      h = textHash(piece);
      old = findBefore(piece, h);
    }
    Doc doc;
    doc.hash = h;
    if (old != nullptr) {
      doc.lines = old->lines;
      doc.chunk = old->chunk;
      if (old->moved_to == UINT32_MAX) {
        doc.text = std::move(old->text);  // no copy of the text
        old->moved_to = static_cast<uint32_t>(now.size());
      } else {
        doc.text = std::string(piece);  // the same text twice in one file
      }
      next_before = static_cast<size_t>(old - before->data()) + 1;
      ++reused_;
    } else {
      auto [lo, hi] = parsed_now.equal_range(h);
      for (auto it = lo; it != hi; ++it) {
        if (now[it->second].text == piece) {
          doc.chunk = now[it->second].chunk;  // the same text twice in one file
          break;
        }
      }
      doc.text = std::string(piece);
      doc.lines = countLines(piece, 0, piece.size());
      if (doc.chunk != nullptr) {
        ++reused_;
      } else {
        doc.chunk = parseChunk(doc.text, file);
        parsed_now.emplace(h, static_cast<uint32_t>(now.size()));
        ++parsed_;
      }
    }
    now.push_back(std::move(doc));
    const Chunk& chunk = *now.back().chunk;
    if (chunk.syntax_error) {
      // The whole file is unusable, as if yaml-cpp had read it in one piece.
      result->resources.resize(first_resource);
      result->diagnostics.resize(first_diagnostic);
      result->diagnostics.push_back(placed(chunk.diagnostics.front(), file, offset));
      result->outcome = LoadOutcome::kSyntaxError;
      return;
    }
    for (const Diagnostic& d : chunk.diagnostics)
      result->diagnostics.push_back(placed(d, file, offset));
    for (const Resource& r : chunk.resources) {
      result->resources.push_back(r);
      Resource& res = result->resources.back();
      res.file = file;
      res.line_offset = offset;
      if (!res.mark.is_null()) res.mark.line += offset;
    }
  }
}

LoadResult Loader::loadText(std::string_view text, const std::string& file) {
  parsed_ = reused_ = 0;
  timings_ = {};
  current_.clear();
  LoadResult result;
  loadFileText(text, file, &result);
  previous_ = std::move(current_);
  current_.clear();
  return result;
}

LoadResult loadString(std::string_view text, const std::string& file) {
  return Loader().loadText(text, file);
}

LoadResult loadPath(const std::string& path) { return Loader().load(path); }

LoadResult Loader::load(const std::string& path) {
  parsed_ = reused_ = 0;
  timings_ = {};
  current_.clear();
  LoadResult result;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    result.outcome = LoadOutcome::kUnreadable;
    result.diagnostics.push_back(
        fileDiagnostic(path, "cannot read configuration: " +
                                 (ec ? ec.message() : std::string("no such file or directory"))));
    return result;
  }
  std::vector<std::string> files;
  if (fs::is_directory(status)) {
    fs::directory_iterator it(path, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      std::error_code type_ec;
      if (isYamlName(it->path()) && !it->is_directory(type_ec))
        files.push_back(it->path().string());
    }
    if (ec) {
      result.outcome = LoadOutcome::kUnreadable;
      result.diagnostics.push_back(
          fileDiagnostic(path, "cannot read configuration directory: " + ec.message()));
      return result;
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      result.diagnostics.push_back(
          fileDiagnostic(path, "no *.yaml or *.yml files in directory", 0, 0, Severity::kWarning));
    }
  } else {
    files.push_back(path);
  }
  for (const std::string& file : files) {
    std::string& text = buffer_;
    std::string error;
    auto start = std::chrono::steady_clock::now();
    bool read = readFile(file, &text, &error);
    timings_.read_ms +=
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!read) {
      result.outcome = LoadOutcome::kUnreadable;
      result.resources.clear();
      result.diagnostics.push_back(fileDiagnostic(file, "cannot read configuration: " + error));
      return result;
    }
    LoadOutcome before = result.outcome;
    loadFileText(text, file, &result);
    if (before == LoadOutcome::kSyntaxError) result.outcome = before;
  }
  previous_ = std::move(current_);
  current_.clear();
  return result;
}

}  // namespace portico::config
