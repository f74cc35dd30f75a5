// The results of `fpi bench paper` read back from the run directories, and the tables, plots and the
// report page made from them (bench_report.hpp).
#include "bench_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "fpi/core.hpp"
#include "fpi/io/file.hpp"

namespace fpi_cli::bench {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

std::optional<double> number_at(const json& record, const std::string& split, const std::string& key) {
  if (!record.contains(split) || !record[split].contains(key)) return std::nullopt;
  return record[split][key].get<double>();
}

// F1 is shown in percent, as the paper's Table 2 does.
double scaled(const RunResult& r, double value) { return r.metric == "f1" ? 100.0 * value : value; }

std::string general(double value, int digits = 4) {
  std::ostringstream out;
  out << std::setprecision(digits) << value;
  return out.str();
}

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string html_table(const Table& t) {
  std::string html = "<h3>" + html_escape(t.title) + "</h3>\n<table>\n<tr>";
  for (const std::string& h : t.header) html += "<th>" + html_escape(h) + "</th>";
  html += "</tr>\n";
  for (const auto& row : t.rows) {
    html += "<tr>";
    for (const std::string& cell : row) html += "<td>" + html_escape(cell) + "</td>";
    html += "</tr>\n";
  }
  html += "</table>\n";
  for (const std::string& note : t.notes) html += "<p class=\"note\">" + html_escape(note) + "</p>\n";
  return html;
}

bool have_gnuplot() { return std::system("command -v gnuplot > /dev/null 2>&1") == 0; }

// "-" for a row without a fixed-point layer, or a solve that never ran.
std::string converged_text(const Solve& solve) {
  return solve.samples > 0 ? fixed(100.0 * solve.to_json()["converged_fraction"].get<double>(), 2) + "%" : "-";
}

std::string iterations_text(const Solve& solve) {
  return solve.samples > 0 ? fixed(solve.to_json()["mean_iterations"].get<double>(), 1) + "/" +
                                 std::to_string(solve.max_iterations)
                           : "-";
}

double seconds_per_epoch(const RunResult& r) {
  double seconds = 0.0;
  for (const EpochRecord& e : r.epochs) seconds += e.seconds;
  return seconds / static_cast<double>(r.epochs.size());
}

// Writes OUT/<name>.gp and runs gnuplot on it; returns the PNG's name, or empty with `problem` set.
std::string run_gnuplot(const fs::path& out, const std::string& name, const std::string& script,
                        std::string& problem) {
  const std::string png = name + ".png";
  fpi::io::write_file_atomically((out / (name + ".gp")).string(), script);
  if (!have_gnuplot()) {
    problem = "gnuplot was not found (Debian: apt-get install gnuplot-nox); the plotted numbers are in " + name +
              ".csv and the script in " + name + ".gp";
    return {};
  }
  const std::string command = "cd " + shell_quote(out.string()) + " && gnuplot " + shell_quote(name + ".gp") +
                              " > " + shell_quote(name + ".gnuplot.log") + " 2>&1";
  std::error_code ignored;
  if (std::system(command.c_str()) != 0 || !fs::exists(out / png, ignored)) {
    problem = "gnuplot failed on " + name + ".gp (its output is in " + name + ".gnuplot.log)";
    return {};
  }
  fs::remove(out / (name + ".gnuplot.log"), ignored);  // kept only to explain a failure
  return png;
}

constexpr char kStyle[] =
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0}th,td{border:1px solid #bbb;padding:0.25em 0.6em}"
    "td{text-align:right}td:first-child{text-align:left}th{background:#eee}"
    ".note{color:#555;font-size:0.9em}code{background:#f4f4f4;padding:0 0.2em}img{max-width:100%}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:0.2em 1em}dt{font-weight:bold}";

}  // namespace

void Solve::add(const json& summary) {
  const auto n = summary.at("samples").get<std::int64_t>();
  samples += n;
  iterations += summary.at("mean_iterations").get<double>() * static_cast<double>(n);
  converged += summary.at("converged_fraction").get<double>() * static_cast<double>(n);
  max_iterations = std::max(max_iterations, summary.at("max_iterations").get<int>());
}

json Solve::to_json() const {
  const double n = static_cast<double>(std::max<std::int64_t>(samples, 1));
  return {{"samples", samples}, {"mean_iterations", iterations / n}, {"max_iterations", max_iterations},
          {"converged_fraction", converged / n}};
}

void read_metrics(const fs::path& path, RunResult& result) {
  std::istringstream lines(fpi::io::read_file(path.string()));
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (line.empty()) continue;
    json record;
    try {
      record = json::parse(line);
      EpochRecord epoch;
      epoch.epoch = record.at("epoch").get<std::int64_t>();
      epoch.train_loss = record.at("train").at("loss").get<double>();
      epoch.validation_loss = number_at(record, "validation", "loss");
      epoch.test_loss = number_at(record, "test", "loss");
      epoch.validation_metric = number_at(record, "validation", result.metric);
      epoch.test_metric = number_at(record, "test", result.metric);
      epoch.threshold = number_at(record, "validation", "f1_threshold");
      const bool fixed_half = result.threshold == 0.5;
      epoch.validation_f1_half = number_at(record, "validation", fixed_half ? "f1" : "f1_at_0.5");
      epoch.test_f1_half = number_at(record, "test", fixed_half ? "f1" : "f1_at_0.5");
      epoch.best = record.value("best", false);
      epoch.seconds = record.value("seconds", 0.0);
      if (record["train"].contains("fixed_point")) {
        for (const auto& [layer, entry] : record["train"]["fixed_point"].items()) {
          result.solves[layer].first.add(entry.at("forward"));
          if (entry.contains("backward")) result.solves[layer].second.add(entry.at("backward"));
        }
      }
      result.epochs.push_back(epoch);
    } catch (const json::exception& e) {
      fpi::fail(path.string(), ":", number, ": unexpected record: ", e.what());
    }
  }
  FPI_CHECK(!result.epochs.empty(), path.string(), ": no epoch recorded");
}

// The clean protocol's epoch: the last one the trainer marked best on the validation split.
const EpochRecord& clean_epoch(const RunResult& r) {
  const EpochRecord* chosen = &r.epochs.back();
  for (const EpochRecord& e : r.epochs)
    if (e.best) chosen = &e;
  return *chosen;
}

// The paper's protocol: the best test number over all epochs.
const EpochRecord& paper_epoch(const RunResult& r) {
  const EpochRecord* chosen = nullptr;
  for (const EpochRecord& e : r.epochs) {
    if (!e.test_metric) continue;
    const bool better = !chosen || (r.mode == "max" ? *e.test_metric > *chosen->test_metric
                                                    : *e.test_metric < *chosen->test_metric);
    if (better) chosen = &e;
  }
  return chosen ? *chosen : r.epochs.back();
}

const EpochRecord* clean_epoch_at_half(const RunResult& r) {
  const EpochRecord* chosen = nullptr;
  for (const EpochRecord& e : r.epochs)
    if (e.validation_f1_half && (!chosen || *e.validation_f1_half > *chosen->validation_f1_half)) chosen = &e;
  return chosen;
}

const EpochRecord* paper_epoch_at_half(const RunResult& r) {
  const EpochRecord* chosen = nullptr;
  for (const EpochRecord& e : r.epochs)
    if (e.test_f1_half && (!chosen || *e.test_f1_half > *chosen->test_f1_half)) chosen = &e;
  return chosen;
}

std::string fixed(double value, int digits) {
  if (!std::isfinite(value)) return "-";
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << value;
  return out.str();
}

std::string shell_quote(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                              "-_./=:,+@") == std::string::npos)
    return word;
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

void print_table(std::ostream& out, const Table& t) {
  std::vector<std::size_t> width(t.header.size());
  for (std::size_t c = 0; c < t.header.size(); ++c) {
    width[c] = t.header[c].size();
    for (const auto& row : t.rows) width[c] = std::max(width[c], row[c].size());
  }
  out << "\n" << t.title << "\n";
  const auto line = [&](const std::vector<std::string>& cells) {
    for (std::size_t c = 0; c < cells.size(); ++c) {
      if (c == 0) out << std::left << std::setw(static_cast<int>(width[c])) << cells[c];
      else out << "  " << std::right << std::setw(static_cast<int>(width[c])) << cells[c];
    }
    out << std::left << "\n";
  };
  line(t.header);
  for (const auto& row : t.rows) line(row);
  for (const std::string& note : t.notes) out << note << "\n";
}

std::string markdown_table(const Table& t) {
  std::string md = "### " + t.title + "\n\n|";
  for (const std::string& h : t.header) md += " " + h + " |";
  md += "\n|";
  for (std::size_t c = 0; c < t.header.size(); ++c) md += c == 0 ? "---|" : "---:|";
  md += "\n";
  for (const auto& row : t.rows) {
    md += "|";
    for (const std::string& cell : row) md += " " + cell + " |";
    md += "\n";
  }
  md += "\n";
  for (const std::string& note : t.notes) md += note + "\n\n";
  return md;
}

// The columns every row has: both protocols, the FPI solves over training and the costs.
Table detail_table(const std::string& title, const std::vector<const RunResult*>& rows, int digits) {
  Table t{title,
          {"run", "paper", "test (paper protocol)", "test (clean)", "final train loss", "fwd converged",
           "fwd iters mean/max", "bwd converged", "bwd iters mean/max", "s/epoch", "params", "peak MB"},
          {},
          {}};
  for (const RunResult* r : rows) {
    const EpochRecord& best_test = paper_epoch(*r);
    const EpochRecord& chosen = clean_epoch(*r);
    const auto at_epoch = [&](const EpochRecord& e) {
      return e.test_metric ? fixed(scaled(*r, *e.test_metric), digits) + " @" + std::to_string(e.epoch) : "-";
    };
    const std::pair<Solve, Solve> solves = r->solves.empty() ? std::pair<Solve, Solve>{} : r->solves.begin()->second;
    t.rows.push_back({r->run.name, r->run.paper ? fixed(*r->run.paper, 2) : "-", at_epoch(best_test),
                      at_epoch(chosen), general(r->epochs.back().train_loss), converged_text(solves.first),
                      iterations_text(solves.first), converged_text(solves.second), iterations_text(solves.second),
                      general(seconds_per_epoch(*r), 3), std::to_string(r->parameters),
                      fixed(static_cast<double>(r->peak_bytes) / (1024.0 * 1024.0), 1)});
  }
  t.notes.push_back("test (paper protocol): the best test " + (rows.empty() ? std::string() : rows[0]->metric) +
                    " over epochs, @ its epoch; test (clean): the test number at the epoch chosen on the "
                    "validation split (an f1 with eval.threshold \"tune\" at the threshold validation chose, for "
                    "both). converged and iterations: the FPI layer's training solves (forward and "
                    "backward), all epochs together; results.json has every layer. peak MB: the peak of fpi's "
                    "allocator during the run, the data included.");
  return t;
}

Table toy_table(const std::vector<const RunResult*>& rows) {
  Table t{"Toy (Section 4.1, Figures 2-3): box-constrained least squares, MSE loss",
          {"model", "final train loss", "final test loss", "test loss (clean)", "paper"},
          {},
          {"The paper shows the toy losses only as curves (Figures 2-3); the plot below is their counterpart."}};
  for (const RunResult* r : rows) {
    const EpochRecord& last = r->epochs.back();
    const EpochRecord& chosen = clean_epoch(*r);
    t.rows.push_back({r->run.label, general(last.train_loss), last.test_loss ? general(*last.test_loss) : "-",
                      chosen.test_loss ? general(*chosen.test_loss) : "-", "figure only"});
  }
  return t;
}

Table bibtex_table(const std::vector<const RunResult*>& rows) {
  Table t{"Bibtex (Section 4.4, Table 2): example-based F1 (%) on the test split",
          {"model", "paper protocol, 0.5", "paper protocol, tuned", "clean", "clean: epoch, threshold",
           "clean at 0.5", "paper"},
          {},
          {"paper protocol: the best test F1 over epochs, as the paper reports it; at 0.5: labels predicted at "
           "probability >= 0.5, the authors' rule; tuned: at each epoch's threshold chosen on the validation split "
           "from SPEN's grid. clean: the epoch and the threshold both chosen on the validation split (held out of "
           "the training file), the test F1 read at that epoch only; clean at 0.5: the epoch chosen on the "
           "validation F1 at 0.5. '-': the run did not tune its threshold. The paper's other rows are quoted "
           "from the paper, not measured here."}};
  const auto percent = [](const std::optional<double>& v) { return v ? fixed(100.0 * *v, 2) : std::string("-"); };
  for (const RunResult* r : rows) {
    const bool tuned = !r->threshold;
    const EpochRecord* best_half = paper_epoch_at_half(*r);
    const EpochRecord* clean_half = clean_epoch_at_half(*r);
    const EpochRecord& best = paper_epoch(*r);
    const EpochRecord& chosen = clean_epoch(*r);
    const std::optional<double> threshold = chosen.threshold ? chosen.threshold : r->threshold;
    const std::string choice = std::to_string(chosen.epoch) + ", " + (threshold ? general(*threshold) : "-");
    t.rows.push_back({r->run.label, best_half ? percent(best_half->test_f1_half) : "-",
                      tuned ? percent(best.test_metric) : "-", percent(chosen.test_metric), choice,
                      clean_half ? percent(clean_half->test_f1_half) : "-", fixed(*r->run.paper, 1)});
  }
  const std::pair<const char*, const char*> quoted[] = {
      {"MLP (paper)", "38.9"}, {"SPEN (paper)", "42.2"}, {"ICNN (paper)", "41.5"}, {"DVN (paper)", "42.9 / 44.7"}};
  for (const auto& [model, number] : quoted) t.rows.push_back({model, "-", "-", "-", "-", "-", number});
  return t;
}

Table denoise_table(const std::vector<const RunResult*>& rows) {
  Table t{"Denoising (Section 4.2, Table 1): PSNR (dB) on BSD68, clean protocol",
          {"model"},
          {},
          {"The paper's images were gray crops of the Flying Chairs dataset (400 for training, 100 for testing), "
           "which are not available here: these runs train on Train400 patches and test on BSD68, so the "
           "absolute PSNRs compare only loosely with the paper's; the gap between the rows is the claim.",
           "Each sigma's PSNR is the test PSNR at the epoch chosen on validation images held out of Train400."}};
  std::vector<int> sigmas;
  std::vector<std::string> labels;
  for (const RunResult* r : rows) {
    if (std::find(sigmas.begin(), sigmas.end(), *r->run.sigma) == sigmas.end()) sigmas.push_back(*r->run.sigma);
    if (std::find(labels.begin(), labels.end(), r->run.label) == labels.end()) labels.push_back(r->run.label);
  }
  for (int sigma : sigmas) {
    t.header.push_back("sigma " + std::to_string(sigma));
    t.header.push_back("paper");
  }
  const auto find = [&](const std::string& label, int sigma) -> const RunResult* {
    for (const RunResult* r : rows)
      if (r->run.label == label && *r->run.sigma == sigma) return r;
    return nullptr;
  };
  const auto clean_psnr = [](const RunResult* r) -> std::optional<double> {
    return r ? clean_epoch(*r).test_metric : std::nullopt;
  };
  for (const std::string& label : labels) {
    std::vector<std::string> row{label};
    for (int sigma : sigmas) {
      const RunResult* r = find(label, sigma);
      const std::optional<double> ours = clean_psnr(r);
      row.push_back(ours ? fixed(*ours, 2) : "-");
      row.push_back(r && r->run.paper ? fixed(*r->run.paper, 2) : "-");
    }
    t.rows.push_back(row);
  }
  // The paper's claim is this gap, growing with sigma (+0.25, +0.56, +0.65 dB).
  if (labels.size() == 2) {
    std::vector<std::string> row{labels[0] + " - " + labels[1]};
    for (int sigma : sigmas) {
      const RunResult *a = find(labels[0], sigma), *b = find(labels[1], sigma);
      const std::optional<double> ours_a = clean_psnr(a), ours_b = clean_psnr(b);
      row.push_back(ours_a && ours_b ? fixed(*ours_a - *ours_b, 2) : "-");
      row.push_back(a && b && a->run.paper && b->run.paper ? fixed(*a->run.paper - *b->run.paper, 2) : "-");
    }
    t.rows.push_back(row);
  }
  return t;
}

Table flow_table(const std::vector<const RunResult*>& rows) {
  Table t{"Optical flow (Section 4.3, Figure 5): average end-point error (pixels) on the test pairs",
          {"model", "aEPE (last epoch)", "aEPE (clean)", "aEPE (paper protocol)", "s/epoch", "params",
           "extra params", "fwd iters mean/max", "fwd converged", "bwd iters mean/max", "bwd converged"},
          {},
          {"The paper trains FlowNet on Flying Chairs and shows only the aEPE curves (Figure 5). Flying Chairs is "
           "not available: these pairs are made the same way (textured patches with random masks under random "
           "affine motions in front of a moving background, exact flow, real occlusions), from the bundled "
           "Train400 (training) and BSD68 (test) images, at a size a CPU can train.",
           "aEPE (clean): at the epoch chosen on the validation pairs; aEPE (paper protocol): the best test aEPE "
           "over epochs. extra params: parameters beyond the feed-forward row's, i.e. the FPI layer's. iters: "
           "the FPI layer's training solves, all epochs together."}};
  const RunResult* baseline = nullptr;
  for (const RunResult* r : rows)
    if (r->solves.empty()) baseline = r;
  for (const RunResult* r : rows) {
    const std::pair<Solve, Solve> solves = r->solves.empty() ? std::pair<Solve, Solve>{} : r->solves.begin()->second;
    const auto aepe = [](const EpochRecord& e) {
      return e.test_metric ? fixed(*e.test_metric, 3) + " @" + std::to_string(e.epoch) : std::string("-");
    };
    std::string extra = "-";
    if (baseline && r != baseline) {
      const std::int64_t added = r->parameters - baseline->parameters;
      std::ostringstream text;
      text << '+' << added << " ("
           << fixed(100.0 * static_cast<double>(added) / static_cast<double>(baseline->parameters), 1) << "%)";
      extra = text.str();
    }
    t.rows.push_back({r->run.label, aepe(r->epochs.back()), aepe(clean_epoch(*r)), aepe(paper_epoch(*r)),
                      general(seconds_per_epoch(*r), 3), std::to_string(r->parameters), extra,
                      iterations_text(solves.first), converged_text(solves.first), iterations_text(solves.second),
                      converged_text(solves.second)});
  }
  return t;
}

// The plotted numbers: train and test loss per epoch, two columns per run.
std::string curve_csv(const std::vector<const RunResult*>& rows) {
  std::string csv = "epoch";
  std::size_t epochs = 0;
  for (const RunResult* r : rows) {
    csv += "," + r->run.name + "_train_loss," + r->run.name + "_test_loss";
    epochs = std::max(epochs, r->epochs.size());
  }
  csv += "\n";
  for (std::size_t e = 0; e < epochs; ++e) {
    csv += std::to_string(e + 1);
    for (const RunResult* r : rows) {
      if (e < r->epochs.size()) {
        const EpochRecord& record = r->epochs[e];
        csv += ',';
        csv += general(record.train_loss, 8);
        csv += ',';
        if (record.test_loss) csv += general(*record.test_loss, 8);
      } else {
        csv += ",,";
      }
    }
    csv += "\n";
  }
  return csv;
}

// The start of a gnuplot script drawing `rows` per epoch into OUT/<name>.png, up to its "plot"
// command; `axes` sets the labels, scale and key. An earlier run's PNG is removed first, so that it
// cannot pass for this one's.
std::string plot_preamble(const fs::path& out, const std::string& name, const std::string& title,
                          const std::string& axes, const std::vector<const RunResult*>& rows) {
  std::error_code ignored;
  fs::remove(out / (name + ".png"), ignored);
  std::ostringstream gp;
  gp << "set terminal pngcairo size 960,560 noenhanced\n"
     << "set output '" << name << ".png'\n"
     << "set datafile separator ','\n"
     << "set title '" << title << "'\n"
     << "set xlabel 'epoch'\n"
     << axes;
  std::size_t epochs = 0;
  for (const RunResult* r : rows) epochs = std::max(epochs, r->epochs.size());
  if (epochs <= 20) gp << "set xtics 1\n";  // whole epochs, not gnuplot's fractional ticks
  gp << "plot ";
  return gp.str();
}

// Writes OUT/<name>.gp and runs gnuplot on it; returns the PNG's name, or empty with `problem` set.
std::string plot(const fs::path& out, const std::string& name, const std::string& title,
                 const std::vector<const RunResult*>& rows, std::string& problem) {
  std::ostringstream gp;
  gp << plot_preamble(out, name, title, "set ylabel 'loss'\nset logscale y\nset key outside right\nset grid\n",
                      rows);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::size_t column = 2 + 2 * i;
    gp << (i ? ", \\\n     " : "") << "'" << name << ".csv' using 1:" << column << " with linespoints lc " << i + 1
       << " dt 1 title '" << rows[i]->run.name << " train', '" << name << ".csv' using 1:" << column + 1
       << " with linespoints lc " << i + 1 << " dt 2 title '" << rows[i]->run.name << " test'";
  }
  gp << "\n";
  return run_gnuplot(out, name, gp.str(), problem);
}

std::string metric_csv(const std::vector<const RunResult*>& rows) {
  std::string csv = "epoch";
  std::size_t epochs = 0;
  for (const RunResult* r : rows) {
    csv += "," + r->run.name + "_test_" + r->metric;
    epochs = std::max(epochs, r->epochs.size());
  }
  csv += "\n";
  for (std::size_t e = 0; e < epochs; ++e) {
    csv += std::to_string(e + 1);
    for (const RunResult* r : rows) {
      csv += ',';
      if (e < r->epochs.size() && r->epochs[e].test_metric) csv += general(*r->epochs[e].test_metric, 8);
    }
    csv += "\n";
  }
  return csv;
}

std::string plot_metric(const fs::path& out, const std::string& name, const std::string& title,
                        const std::string& ylabel, const std::vector<const RunResult*>& rows, std::string& problem) {
  std::ostringstream gp;
  gp << plot_preamble(out, name, title, "set ylabel '" + ylabel + "'\nset key top right\nset grid\n", rows);
  for (std::size_t i = 0; i < rows.size(); ++i)
    gp << (i ? ", \\\n     " : "") << "'" << name << ".csv' using 1:" << i + 2 << " with linespoints lc " << i + 1
       << " title '" << rows[i]->run.label << "'";
  gp << "\n";
  return run_gnuplot(out, name, gp.str(), problem);
}

std::string html_report(const json& machine, const std::string& command, const std::string& profile,
                        const std::vector<Section>& sections) {
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                     "<title>fpi bench paper (" + html_escape(profile) + ")</title>\n<style>" + kStyle +
                     "</style>\n</head>\n<body>\n<h1>FPI layers against feed-forward nets on the paper's "
                     "experiments</h1>\n<dl>\n";
  const auto item = [&](const std::string& key, const std::string& value) {
    html += "<dt>" + html_escape(key) + "</dt><dd>" + value + "</dd>\n";
  };
  item("command", "<code>" + html_escape(command) + "</code>");
  item("profile", html_escape(profile));
  item("commit", "<code>" + html_escape(machine["commit"].get<std::string>()) + "</code>");
  item("CPU", html_escape(machine["cpu"].get<std::string>()) + ", " +
                  std::to_string(machine["cores"].get<unsigned>()) + " cores");
  item("device", html_escape(machine["device"].get<std::string>()));
  item("date", html_escape(machine["date"].get<std::string>()));
  html += "</dl>\n";
  for (const Section& s : sections) {
    html += "<h2>" + html_escape(s.title) + "</h2>\n<p class=\"note\">" + html_escape(s.note) + "</p>\n";
    for (const Table& t : s.tables) html += html_table(t);
    if (!s.plot.empty())
      html += "<p><img src=\"" + html_escape(s.plot) + "\" alt=\"" + html_escape(s.plot_alt) + "\"></p>\n";
    else
      html += "<p class=\"note\">No plot: " + html_escape(s.plot_problem) + "</p>\n";
    html += "<p class=\"note\">The plotted numbers: <a href=\"" + html_escape(s.csv) + "\">" + html_escape(s.csv) +
            "</a></p>\n";
    if (!s.images.empty()) {
      html += "<p>" + html_escape(s.images_caption) + "</p>\n";
      for (const std::string& image : s.images)
        html += "<figure><img src=\"" + html_escape(image) + "\" alt=\"" + html_escape(image) +
                "\"><figcaption>" + html_escape(image) + "</figcaption></figure>\n";
    }
  }
  html += "</body>\n</html>\n";
  return html;
}

json result_json(const RunResult& r) {
  const auto optional_number = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  const EpochRecord& best = paper_epoch(r);
  const EpochRecord& chosen = clean_epoch(r);
  const EpochRecord& last = r.epochs.back();
  double seconds = 0.0;
  for (const EpochRecord& e : r.epochs) seconds += e.seconds;
  json row = {{"experiment", r.run.experiment},
              {"model", r.run.label},
              {"config", r.run.config},
              {"run", r.run.name},
              {"run_dir", "runs/" + r.run.name},
              {"overrides", r.run.overrides},
              {"sigma", r.run.sigma ? json(*r.run.sigma) : json(nullptr)},
              {"metric", r.metric},
              {"device", r.device},
              {"paper", optional_number(r.run.paper)},
              {"epochs", r.epochs.size()},
              {"parameters", r.parameters},
              {"peak_memory_bytes", r.peak_bytes},
              {"seconds_per_epoch", seconds / static_cast<double>(r.epochs.size())},
              {"seconds_total", r.seconds},
              {"paper_protocol", {{"epoch", best.epoch}, {"test", optional_number(best.test_metric)}}},
              {"clean_protocol",
               {{"epoch", chosen.epoch},
                {"validation", optional_number(chosen.validation_metric)},
                {"test", optional_number(chosen.test_metric)},
                {"threshold", optional_number(chosen.threshold ? chosen.threshold : r.threshold)}}},
              {"final",
               {{"train_loss", last.train_loss},
                {"validation_loss", optional_number(last.validation_loss)},
                {"test_loss", optional_number(last.test_loss)},
                {"validation", optional_number(last.validation_metric)},
                {"test", optional_number(last.test_metric)}}}};
  row["threshold"] = r.threshold ? json(*r.threshold) : json("tune");
  const EpochRecord* best_half = paper_epoch_at_half(r);
  const EpochRecord* clean_half = clean_epoch_at_half(r);
  row["f1_at_0.5"] = nullptr;
  if (best_half && clean_half)
    row["f1_at_0.5"] = {{"paper_protocol", {{"epoch", best_half->epoch}, {"test", *best_half->test_f1_half}}},
                        {"clean_protocol",
                         {{"epoch", clean_half->epoch},
                          {"validation", *clean_half->validation_f1_half},
                          {"test", optional_number(clean_half->test_f1_half)}}}};
  json solves = json::object();
  for (const auto& [layer, pair] : r.solves) {
    solves[layer]["forward"] = pair.first.to_json();
    if (pair.second.samples > 0) solves[layer]["backward"] = pair.second.to_json();
  }
  row["fixed_point"] = solves;
  json curve = json::array();
  for (const EpochRecord& e : r.epochs)
    curve.push_back({{"epoch", e.epoch},
                     {"train_loss", e.train_loss},
                     {"validation_loss", optional_number(e.validation_loss)},
                     {"test_loss", optional_number(e.test_loss)},
                     {"validation", optional_number(e.validation_metric)},
                     {"test", optional_number(e.test_metric)},
                     {"threshold", optional_number(e.threshold)},
                     {"validation_f1_at_0.5", optional_number(e.validation_f1_half)},
                     {"test_f1_at_0.5", optional_number(e.test_f1_half)}});
  row["curve"] = curve;
  row["images"] = r.images;
  return row;
}

namespace {

double mib(std::size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// The point of `mode` at `iterations`; every run_backward() result has both modes at each count.
const BackwardPoint& point_at(const std::vector<BackwardPoint>& points, const std::string& mode, int iterations) {
  for (const BackwardPoint& p : points)
    if (p.mode == mode && p.iterations == iterations) return p;
  fpi::fail("bench paper backward: no ", mode, " measurement at ", iterations, " iterations");
}

json solve_json(const fpi::SolveStats& s) {
  if (!s.ran) return nullptr;
  return {{"mean_iterations", s.mean_iterations()},
          {"max_iterations", s.max_iterations()},
          {"converged_fraction", s.converged_fraction()}};
}

}  // namespace

Table backward_table(const BackwardSetup& setup, const std::vector<BackwardPoint>& points) {
  Table t{"Implicit against unrolled backward: one forward + backward pass of the Bibtex FPI_NN layer",
          {"fwd iters", "implicit peak MiB", "unrolled peak MiB", "peak unrolled/implicit", "implicit s",
           "unrolled s", "time unrolled/implicit", "implicit bwd iters mean/max", "tape nodes implicit/unrolled"},
          {},
          {}};
  for (int n : setup.iterations) {
    const BackwardPoint& implicit = point_at(points, "implicit", n);
    const BackwardPoint& unrolled = point_at(points, "unrolled", n);
    t.rows.push_back({std::to_string(n), fixed(mib(implicit.peak_bytes), 1), fixed(mib(unrolled.peak_bytes), 1),
                      fixed(static_cast<double>(unrolled.peak_bytes) / static_cast<double>(implicit.peak_bytes), 2),
                      general(implicit.median_seconds(), 3), general(unrolled.median_seconds(), 3),
                      fixed(unrolled.median_seconds() / implicit.median_seconds(), 2),
                      fixed(implicit.backward.mean_iterations(), 1) + "/" +
                          std::to_string(implicit.backward.max_iterations()),
                      std::to_string(implicit.tape_nodes) + "/" + std::to_string(unrolled.tape_nodes)});
  }
  std::ostringstream note;
  note << "g(x, z) = sigmoid(fc2(relu(fc1(concat(z, x))))), " << setup.features << " + " << setup.labels << " -> "
       << setup.hidden << " -> " << setup.labels << ", batch " << setup.batch
       << ", on random data of that shape (features and BCE targets uniform in [0, 1)). The forward pass is forced "
          "to exactly that many Picard iterations for every sample (tolerance 1e-300, min_iterations = "
          "max_iterations, no fallback chain; checked; a sample whose float32 residual reaches exactly 0 counts as "
          "converged in results.json but iterates on). The implicit backward then runs its own backward FPI "
          "(Anderson, tolerance 1e-4, the library's defaults): its iterations are in the table. peak MiB: the "
          "allocator's peak bytes in use over the pass, parameters, gradients and data included ("
       << fixed(mib(points.empty() ? 0 : points[0].baseline_bytes), 2)
       << " MiB in use before it). s: the median of " << setup.repeats
       << " passes. tape nodes: the nodes the loss's backward visits.";
  t.notes.push_back(note.str());
  return t;
}

std::string backward_csv(const BackwardSetup& setup, const std::vector<BackwardPoint>& points) {
  std::string csv = "iterations,implicit_peak_mib,unrolled_peak_mib,implicit_seconds,unrolled_seconds\n";
  for (int n : setup.iterations) {
    const BackwardPoint& implicit = point_at(points, "implicit", n);
    const BackwardPoint& unrolled = point_at(points, "unrolled", n);
    csv += std::to_string(n) + "," + general(mib(implicit.peak_bytes), 8) + "," + general(mib(unrolled.peak_bytes), 8) +
           "," + general(implicit.median_seconds(), 8) + "," + general(unrolled.median_seconds(), 8) + "\n";
  }
  return csv;
}

std::string plot_backward(const fs::path& out, const std::string& name, const std::string& title,
                          std::string& problem) {
  std::error_code ignored;
  fs::remove(out / (name + ".png"), ignored);
  const std::string data = "'" + name + ".csv'";
  std::ostringstream gp;
  gp << "set terminal pngcairo size 1100,480 noenhanced\n"
     << "set output '" << name << ".png'\n"
     << "set datafile separator ','\n"
     << "set multiplot layout 1,2 title '" << title << "'\n"
     << "set logscale xy\nset grid\nset key top left\nset xlabel 'forward iterations'\n"
     << "set ylabel 'peak memory in use (MiB)'\n"
     << "plot " << data << " using 1:2 with linespoints lc 1 title 'implicit', " << data
     << " using 1:3 with linespoints lc 2 title 'unrolled'\n"
     << "set ylabel 'forward + backward (s)'\n"
     << "plot " << data << " using 1:4 with linespoints lc 1 title 'implicit', " << data
     << " using 1:5 with linespoints lc 2 title 'unrolled'\n"
     << "unset multiplot\n";
  return run_gnuplot(out, name, gp.str(), problem);
}

json backward_json(const BackwardSetup& setup, const std::vector<BackwardPoint>& points) {
  std::ostringstream device;
  device << setup.device;
  json rows = json::array();
  for (const BackwardPoint& p : points)
    rows.push_back({{"mode", p.mode},
                    {"iterations", p.iterations},
                    {"peak_memory_bytes", p.peak_bytes},
                    {"baseline_bytes", p.baseline_bytes},
                    {"tape_nodes", p.tape_nodes},
                    {"seconds_median", p.median_seconds()},
                    {"seconds", p.seconds},
                    {"forward", solve_json(p.forward)},
                    {"backward", solve_json(p.backward)}});
  json ratios = json::array();
  for (int n : setup.iterations) {
    const BackwardPoint& implicit = point_at(points, "implicit", n);
    const BackwardPoint& unrolled = point_at(points, "unrolled", n);
    ratios.push_back(
        {{"iterations", n},
         {"peak_memory", static_cast<double>(unrolled.peak_bytes) / static_cast<double>(implicit.peak_bytes)},
         {"seconds", unrolled.median_seconds() / implicit.median_seconds()}});
  }
  return {{"layer", "bibtex FPI_NN: sigmoid(fc2(relu(fc1(concat(z, x)))))"},
          {"batch", setup.batch},
          {"features", setup.features},
          {"hidden", setup.hidden},
          {"labels", setup.labels},
          {"data", "random: features and BCE targets uniform in [0, 1)"},
          {"repeats", setup.repeats},
          {"device", device.str()},
          {"rows", rows},
          {"unrolled_over_implicit", ratios}};
}

}  // namespace fpi_cli::bench
