// The ARFF reader on small files written by the tests (every syntax feature, every error with the file
// and line it names), the multi-label split, and the real Bibtex files bundled in data/bibtex/, whose
// expected counts and rows were read off the files with an independent Python script.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <unistd.h>

#include "fpi/data/arff.hpp"
#include "fpi/ops.hpp"
#include "test_util.hpp"

namespace fpi::data {
namespace {

// A file in the temporary directory that lives as long as the object.
class TempFile {
 public:
  explicit TempFile(const std::string& text, const std::string& name = "") {
    static int counter = 0;
    dir_ = std::filesystem::temp_directory_path() /
           ("fpi_test_arff_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / (name.empty() ? "test.arff" : name)).string();
    std::ofstream(path_, std::ios::binary) << text;
  }
  ~TempFile() { std::filesystem::remove_all(dir_); }
  const std::string& path() const { return path_; }
  std::string dir() const { return dir_.string(); }

 private:
  std::filesystem::path dir_;
  std::string path_;
};

using testing::error_of;

// Reads `text` and expects an error that names the file and `line` and contains `fragment`.
void expect_arff_error(const std::string& text, int line, const std::string& fragment, ArffReadOptions options = {}) {
  const TempFile file(text);
  const std::string message = error_of([&] { read_arff(file.path(), options); });
  EXPECT_NE(message.find(file.path() + ":" + std::to_string(line) + ": "), std::string::npos)
      << "message does not name line " << line << ": " << message;
  EXPECT_NE(message.find(fragment), std::string::npos) << "message lacks '" << fragment << "': " << message;
}

const std::string kHeader = "@relation r\n@attribute a numeric\n@attribute b {x,y}\n@attribute c numeric\n@data\n";

TEST(Arff, ReadsEveryHeaderAndDenseRowFeature) {
  const TempFile file(
      "\xEF\xBB\xBF% a comment before the relation\r\n"
      "@RELATION 'my relation'\r\n"
      "\r\n"
      "@Attribute width NUMERIC   % trailing comment\r\n"
      "@attribute 'name with spaces' real\r\n"
      "@attribute \"it\\'s\" Integer\r\n"
      "@attribute colour { red , 'light blue', \"100%\" }\r\n"
      "\t\r\n"
      "@DATA\r\n"
      "% a comment between rows\r\n"
      "1.5, -2e3, +7, red\r\n"
      "  0 ,0.25,3,'light blue'  % why not\r\n"
      "-0.5,1e-3,0,\"100%\"");
  const ArffData d = read_arff(file.path());
  EXPECT_EQ(d.path, file.path());
  EXPECT_EQ(d.relation, "my relation");
  ASSERT_EQ(d.num_attributes(), 4);
  EXPECT_EQ(d.attributes[0].name, "width");
  EXPECT_EQ(d.attributes[1].name, "name with spaces");
  EXPECT_EQ(d.attributes[2].name, "it's");
  EXPECT_EQ(d.attributes[2].type, ArffType::Numeric);
  EXPECT_EQ(d.attributes[3].type, ArffType::Nominal);
  EXPECT_EQ(d.attributes[3].nominal_values, (std::vector<std::string>{"red", "light blue", "100%"}));
  ASSERT_EQ(d.rows, 3);
  const std::vector<std::vector<double>> expected{{1.5, -2000, 7, 0}, {0, 0.25, 3, 1}, {-0.5, 1e-3, 0, 2}};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) EXPECT_EQ(d.at(r, c), expected[r][c]) << "row " << r << " column " << c;
  EXPECT_EQ(d.columns.size(), 9u) << "zeros are not stored";
}

TEST(Arff, ReadsSparseRows) {
  const TempFile file(
      "@relation s\n@attribute a numeric\n@attribute b {x,y,z}\n@attribute c numeric\n@attribute d numeric\n"
      "@data\n{0 1,3 -4.5}\n{}\n{ }\n{  1   z ,  2 3 }\n{1 'y'}\n0.5,y,0,2\n");
  const ArffData d = read_arff(file.path());
  ASSERT_EQ(d.rows, 6);
  EXPECT_EQ(d.row_begin, (std::vector<std::int64_t>{0, 2, 2, 2, 4, 5, 8}));
  EXPECT_EQ(d.at(0, 0), 1.0);
  EXPECT_EQ(d.at(0, 1), 0.0) << "an omitted entry is 0";
  EXPECT_EQ(d.at(0, 3), -4.5);
  EXPECT_EQ(d.at(3, 1), 2.0) << "a nominal value reads as its index";
  EXPECT_EQ(d.at(3, 2), 3.0);
  EXPECT_EQ(d.at(4, 1), 1.0);
  EXPECT_EQ(d.at(5, 3), 2.0);

  const Tensor dense = d.to_dense(1, 4, kFloat64);
  EXPECT_EQ(dense.shape(), (Shape{6, 3}));
  EXPECT_EQ(dense.dtype(), kFloat64);
  EXPECT_EQ(dense.to_vector<double>(),
            (std::vector<double>{0, 0, -4.5, 0, 0, 0, 0, 0, 0, 2, 3, 0, 1, 0, 0, 1, 0, 2}));
  EXPECT_EQ(d.to_dense(2, 2).shape(), (Shape{6, 0}));
  EXPECT_NE(error_of([&] { d.to_dense(3, 5); }).find("are not a range of the 4 attributes"), std::string::npos);
  EXPECT_NE(error_of([&] { d.at(6, 0); }).find("out of range"), std::string::npos);
}

TEST(Arff, MissingValuesAreRejectedUnlessAllowed) {
  const std::string text = kHeader + "1,x,2\n?,y,3\n{1 ?}\n";
  expect_arff_error(text, 7, "missing value '?' for attribute 'a' (column 0)");
  const TempFile file(text);
  const ArffData d = read_arff(file.path(), {.allow_missing = true});
  EXPECT_TRUE(std::isnan(d.at(1, 0)));
  EXPECT_EQ(d.at(1, 1), 1.0);
  EXPECT_TRUE(std::isnan(d.at(2, 1)));
  EXPECT_TRUE(std::isnan(d.to_dense(0, 3).to_vector<double>()[3]));
}

TEST(Arff, QuotedQuestionMarkIsAValue) {
  const TempFile file("@relation q\n@attribute a {'?',b}\n@data\n'?'\nb\n");
  const ArffData d = read_arff(file.path());
  EXPECT_EQ(d.at(0, 0), 0.0);
  EXPECT_EQ(d.at(1, 0), 1.0);
}

TEST(Arff, TextInMemoryReadsAsTheFileWould) {
  const std::string text = kHeader + "1,y,2\n{1 y}\n";
  const TempFile file(text);
  const ArffData from_file = read_arff(file.path());
  const ArffData from_text = read_arff_text(text, "in-memory");
  EXPECT_EQ(from_text.path, "in-memory");
  EXPECT_EQ(from_text.rows, from_file.rows);
  EXPECT_EQ(from_text.row_begin, from_file.row_begin);
  EXPECT_EQ(from_text.columns, from_file.columns);
  EXPECT_EQ(from_text.values, from_file.values);
  const std::string message = error_of([&] { read_arff_text(kHeader + "1,w,2\n", "in-memory"); });
  EXPECT_NE(message.find("read_arff: in-memory:6: 'w' is not a value"), std::string::npos) << message;
}

TEST(Arff, ErrorsNameTheFileAndTheLine) {
  expect_arff_error("@relation r\n@attribute a numeric\n@attribute b text\n@data\n", 3,
                    "attribute 'b' has unknown type 'text'; expected numeric, real, integer");
  expect_arff_error("@relation r\n@attribute s string\n@data\n", 2, "type 'string', which fpi does not read");
  expect_arff_error("@relation r\n@attribute a\n@data\n", 2, "attribute 'a' has no type");
  expect_arff_error(kHeader + "{0 1,3 1}\n", 6, "sparse index 3 is out of range: the file declares 3 attributes");
  expect_arff_error(kHeader + "{0 1,-1 1}\n", 6, "sparse index -1 is out of range");
  expect_arff_error(kHeader + "{2 1,0 1}\n", 6, "sparse index 0 follows index 2; sparse indices must be strictly increasing");
  expect_arff_error(kHeader + "{0 1,0 2}\n", 6, "sparse index 0 follows index 0");
  expect_arff_error(kHeader + "1,x,2\n1,x\n", 7, "dense row has 2 values, expected 3 (one per attribute)");
  expect_arff_error(kHeader + "1,x,2,4\n", 6, "dense row has 4 values, expected 3");
  expect_arff_error(kHeader + "1,x,\n", 6, "empty value for attribute 'c' (column 2)");
  expect_arff_error(kHeader + "1.2.3,x,2\n", 6, "'1.2.3' is not a number, but attribute 'a' (column 0) is numeric");
  expect_arff_error(kHeader + "{2 abc}\n", 6, "'abc' is not a number");
  expect_arff_error(kHeader + "1 2,x,2\n", 6, "expected ',' after value 1 of a dense row");
  expect_arff_error(kHeader + "1,w,2\n", 6, "'w' is not a value of nominal attribute 'b' {x,y}");
  expect_arff_error("@relation r\n@attribute a numeric\n1\n@data\n", 3,
                    "expected @relation, @attribute or @data, but found '1'; data rows must follow the @data line");
  expect_arff_error("@relation r\n@attribute a numeric\n\n", 3, "the file ended before its @data section");
  expect_arff_error("% no relation\n@attribute a numeric\n@data\n", 2, "@attribute before @relation");
  expect_arff_error("@relation r\n@data\n", 2, "@data before any @attribute");
  expect_arff_error("@relation r\n@attribute a numeric\n@attribute a real\n@data\n", 3, "attribute 'a' is declared twice");
  expect_arff_error("@relation r\n@attribute a {}\n@data\n", 2, "nominal attribute 'a' lists no values");
  expect_arff_error("@relation r\n@attribute a {x,x}\n@data\n", 2, "lists the value 'x' twice");
  expect_arff_error("@relation r\n@attribute a {x,y\n@data\n", 2, "the value list is not closed with '}'");
  expect_arff_error("@relation r\n@attribute 'a numeric\n@data\n", 2, "unterminated quoted string 'a numeric");
  expect_arff_error("@relation r\n@attribute a numeric\n@data\n@attribute b numeric\n", 4,
                    "declaration '@attribute' after @data");
  expect_arff_error("@relation r\n@frobnicate a\n", 2, "unknown declaration '@frobnicate'");
  expect_arff_error(kHeader + "{0 1,2 1\n", 6, "sparse row is not closed with '}'");
  expect_arff_error(kHeader + "{0 1,}\n", 6, "expected an attribute index at '}'");
  expect_arff_error(kHeader + "{0 1 2}\n", 6, "expected ',' or '}' after the value of sparse index 0");
  expect_arff_error(kHeader + "{1}\n", 6, "expected a space and a value after sparse index 1");
  expect_arff_error(kHeader + "{0 1},{2}\n", 6, "instance weights are not supported");
}

TEST(Arff, NonFiniteNumbersAreRejected) {
  for (const std::string value :
       {"nan", "NaN", "-nan", "+NAN", "nan(7)", "inf", "-Inf", "+INF", "infinity", "-Infinity"}) {
    expect_arff_error(kHeader + "1,x,2\n" + value + ",x,2\n", 7,
                      "'" + value + "' is not a finite number, but attribute 'a' (column 0) is numeric");
    expect_arff_error(kHeader + "{2 " + value + "}\n", 6, "'" + value + "' is not a finite number");
  }
}

TEST(Arff, OutOfRangeNumbersAreReportedAsSuch) {
  expect_arff_error(kHeader + "1e999,x,2\n", 6, "value '1e999' is out of range for a double (attribute 'a', column 0)");
  expect_arff_error(kHeader + "{2 -1e999}\n", 6, "value '-1e999' is out of range for a double");
  expect_arff_error(kHeader + "1e-999,x,2\n", 6, "value '1e-999' is out of range for a double");
  expect_arff_error(kHeader + "1e999x,x,2\n", 6, "'1e999x' is not a number");
  const TempFile subnormal(kHeader + "1e-310,x,-1.7e308\n");
  const ArffData d = read_arff(subnormal.path());
  EXPECT_EQ(d.at(0, 0), 1e-310);
  EXPECT_EQ(d.at(0, 2), -1.7e308);
}

TEST(Arff, ManyNominalValuesAreCheckedForDuplicates) {
  constexpr int kValues = 50000;
  std::string list;
  for (int i = 0; i < kValues; ++i) {
    list += i ? ",v" : "v";
    list += std::to_string(i);
  }
  std::string last = "v";  // not "v" + to_string(...): GCC 12 warns about that falsely (-Wrestrict)
  last += std::to_string(kValues - 1);
  const TempFile file("@relation r\n@attribute a {" + list + "}\n@data\nv0\n" + last + "\n");
  const ArffData d = read_arff(file.path());
  ASSERT_EQ(d.attributes[0].nominal_values.size(), static_cast<std::size_t>(kValues));
  EXPECT_EQ(d.attributes[0].nominal_values.back(), last);
  EXPECT_EQ(d.at(1, 0), kValues - 1.0);
  expect_arff_error("@relation r\n@attribute a {" + list + ",v123}\n@data\n", 2, "lists the value 'v123' twice");
  expect_arff_error("@relation r\n@attribute a {b,a,'b',a}\n@data\n", 2, "lists the value 'b' twice");
}

// Each nominal attribute has its own look-up table: a value reads as its index in its own attribute's list,
// exactly (case, prefixes, quotes and escapes), in dense and sparse rows alike.
TEST(Arff, NominalValuesReadAsTheirIndexInTheirOwnAttribute) {
  const std::string header =
      "@relation r\n@attribute a {ab,a,'a b',A}\n@attribute n numeric\n@attribute b {a,z}\n"
      "@attribute c {'x\\'y',\"q,r\"}\n@data\n";
  const ArffData d = read_arff_text(header + "a,1,z,'x\\'y'\nab,2,a,\"q,r\"\n'a b',3,z,'x\\'y'\nA,4,a,'q,r'\n"
                                              "{0 a,2 z,3 \"q,r\"}\n",
                                    "mem");
  const double expected[5][4] = {{1, 1, 1, 0}, {0, 2, 0, 1}, {2, 3, 1, 0}, {3, 4, 0, 1}, {1, 0, 1, 1}};
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 4; ++c) EXPECT_EQ(d.at(r, c), expected[r][c]) << "row " << r << ", column " << c;
  for (const char* row : {"a,1,b,'x\\'y'", "ab,1,z,x", "AB,1,z,'x\\'y'", "'a ',1,z,'x\\'y'", "{2 ab}"})
    EXPECT_NE(error_of([&] { read_arff_text(header + row + "\n", "mem"); }).find("is not a value of nominal attribute"),
              std::string::npos)
        << row;
}

TEST(Arff, ControlCharactersInMessagesAreEscaped) {
  const std::string nul = kHeader + std::string("1\0z,x,2\n", 8);
  expect_arff_error(nul, 6, "'1\\x00z' is not a number, but attribute 'a' (column 0) is numeric");
  expect_arff_error(kHeader + "1,'x\\ty',2\n", 6, "'x\\ty' is not a value of nominal attribute 'b' {x,y}");
  expect_arff_error("@relation r\n@attribute a {x,y}\n@data\n'\x01'\n", 4,
                    "'\\x01' is not a value of nominal attribute 'a'");
}

TEST(Arff, EmptyFileIsReportedAsEmpty) {
  for (const std::string text : {"", "\xEF\xBB\xBF"}) {
    const TempFile file(text);
    const std::string message = error_of([&] { read_arff(file.path()); });
    EXPECT_NE(message.find("read_arff: " + file.path() + ": the file is empty"), std::string::npos) << message;
    EXPECT_EQ(message.find(":0:"), std::string::npos) << message;
  }
}

TEST(Arff, MissingFileIsNamed) {
  const std::string path = (std::filesystem::temp_directory_path() / "fpi_no_such_file.arff").string();
  const std::string message = error_of([&] { read_arff(path); });
  EXPECT_NE(message.find("read_arff: file '" + path + "' does not exist"), std::string::npos) << message;
}

TEST(MultiLabel, SplitsTheLastAttributesOff) {
  const TempFile file(
      "@relation m\n@attribute f0 numeric\n@attribute f1 {a,b}\n@attribute l0 {0,1}\n@attribute l1 numeric\n"
      "@data\n{0 2.5,3 1}\n0,b,1,0\n");
  const MultiLabelData m = load_multilabel_arff(file.path(), 2, kFloat64);
  EXPECT_EQ(m.feature_names, (std::vector<std::string>{"f0", "f1"}));
  EXPECT_EQ(m.label_names, (std::vector<std::string>{"l0", "l1"}));
  EXPECT_EQ(m.features.to_vector<double>(), (std::vector<double>{2.5, 0, 0, 1}));
  EXPECT_EQ(m.labels.to_vector<double>(), (std::vector<double>{0, 1, 1, 0}));
  EXPECT_EQ(m.labels.dtype(), kFloat64);
  const std::string too_many = error_of([&] { load_multilabel_arff(file.path(), 5); });
  EXPECT_NE(too_many.find(file.path() + " has 4 attributes, so it cannot hold 5 labels"), std::string::npos) << too_many;
  EXPECT_NE(error_of([&] { load_multilabel_arff(file.path(), 4); }).find("cannot hold 4 labels and at least one feature"),
            std::string::npos);
}

TEST(MultiLabel, RejectsLabelsThatAreNotZeroOrOne) {
  const TempFile numeric("@relation m\n@attribute f numeric\n@attribute l numeric\n@data\n1,2\n");
  EXPECT_NE(error_of([&] { load_multilabel_arff(numeric.path(), 1); }).find("label 'l' of data row 0 in " + numeric.path() + " is 2"),
            std::string::npos);
  const TempFile nominal("@relation m\n@attribute f numeric\n@attribute l {yes,no}\n@data\n1,yes\n");
  EXPECT_NE(error_of([&] { load_multilabel_arff(nominal.path(), 1); }).find("label attribute 'l' of " + nominal.path() +
                                                                            " must be numeric or nominal {0,1}"),
            std::string::npos);
}

const std::string kDataDir = std::string(FPI_SOURCE_DIR) + "/data/bibtex";

std::vector<std::int64_t> active(const Tensor& row) {
  std::vector<std::int64_t> out;
  const auto v = row.to_vector<float>();
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] != 0.0f) out.push_back(static_cast<std::int64_t>(i));
  return out;
}

TEST(Bibtex, TrainSplitHasTheExpectedShapesAndRows) {
  const MultiLabelData d = load_bibtex(kDataDir, Split::Train);
  EXPECT_EQ(d.features.shape(), (Shape{kBibtexTrainRows, kBibtexFeatures}));
  EXPECT_EQ(d.labels.shape(), (Shape{kBibtexTrainRows, kBibtexLabels}));
  EXPECT_EQ(d.features.dtype(), kFloat32);
  EXPECT_EQ(d.feature_names.front(), "0");
  EXPECT_EQ(d.feature_names.back(), "zur");
  EXPECT_EQ(d.label_names.front(), "TAG_2005");
  EXPECT_EQ(d.label_names[134], "TAG_statphys23");
  EXPECT_EQ(d.label_names.back(), "TAG_wiki");
  EXPECT_EQ(d.features.sum().item(), 334250.0);
  EXPECT_EQ(d.labels.sum().item(), 11616.0);
  const std::vector<float> per_label = d.labels.sum({0}).to_vector<float>();
  EXPECT_EQ(std::vector<float>(per_label.begin(), per_label.begin() + 5), (std::vector<float>{39, 85, 51, 71, 33}));
  EXPECT_EQ(per_label[134], 691.0f) << "the most frequent tag";

  // First data line: {0 1,5 1,6 1,20 1,...,1808 1,1810 1,1839 1,1859 1,1897 1,1899 1,1912 1}.
  const std::vector<std::int64_t> row0 = active(d.features.select(0, 0));
  EXPECT_EQ(row0.size(), 87u);
  EXPECT_EQ(std::vector<std::int64_t>(row0.begin(), row0.begin() + 4), (std::vector<std::int64_t>{0, 5, 6, 20}));
  EXPECT_EQ(row0.back(), 1810);
  EXPECT_EQ(active(d.labels.select(0, 0)), (std::vector<std::int64_t>{3, 23, 61, 63, 76}));
  EXPECT_EQ(d.label_names[3], "TAG_agdetection");
  EXPECT_EQ(active(d.labels.select(0, 1)), (std::vector<std::int64_t>{24, 60, 75, 84, 94, 138}));
  EXPECT_EQ(active(d.labels.select(0, kBibtexTrainRows - 1)), (std::vector<std::int64_t>{48, 117}));
}

TEST(Bibtex, TestSplitHasTheExpectedShapesAndRows) {
  const MultiLabelData d = load_bibtex(kDataDir, Split::Test, kFloat64);
  EXPECT_EQ(d.features.shape(), (Shape{kBibtexTestRows, kBibtexFeatures}));
  EXPECT_EQ(d.labels.shape(), (Shape{kBibtexTestRows, kBibtexLabels}));
  EXPECT_EQ(d.labels.dtype(), kFloat64);
  EXPECT_EQ(d.features.sum().item(), 173496.0);
  EXPECT_EQ(d.labels.sum().item(), 6146.0);
  EXPECT_EQ(active(d.labels.select(0, 0)), (std::vector<std::int64_t>{16, 27, 77}));
  EXPECT_EQ(active(d.features.select(0, 1)).size(), 112u);
  EXPECT_EQ(active(d.labels.select(0, kBibtexTestRows - 1)), (std::vector<std::int64_t>{6}));
  // Every example has at least one label (the 0/0 case of example F1 never arises on Bibtex).
  EXPECT_EQ(fpi::min(d.labels.sum({1})).item(), 1.0);
}

TEST(Bibtex, LabelsAreTheOnesMulanHeaderLists) {
  std::ifstream xml(kDataDir + "/bibtex.xml");
  std::stringstream text;
  text << xml.rdbuf();
  std::vector<std::string> names;
  const std::string s = text.str(), key = "<label name=\"";
  for (std::size_t at = s.find(key); at != std::string::npos; at = s.find(key, at)) {
    at += key.size();
    names.push_back(s.substr(at, s.find('"', at) - at));
  }
  const ArffData header = read_arff(kDataDir + "/bibtex-test.arff");
  std::vector<std::string> last;
  for (std::int64_t c = kBibtexFeatures; c < header.num_attributes(); ++c) last.push_back(header.attributes[c].name);
  EXPECT_EQ(names, last);
}

TEST(Bibtex, WrongFilesAreReportedWithTheirPath) {
  const std::string missing = error_of([] { load_bibtex("/nonexistent-dir", Split::Train); });
  EXPECT_NE(missing.find("/nonexistent-dir/bibtex-train.arff' does not exist"), std::string::npos) << missing;
  const TempFile small("@relation bibtex\n@attribute a {0,1}\n@data\n{0 1}\n", "bibtex-test.arff");
  const std::string wrong = error_of([&] { load_bibtex(small.dir(), Split::Test); });
  EXPECT_NE(wrong.find(small.path() + " has 1 attributes, not 1836 features + 159 labels"), std::string::npos) << wrong;
}

}  // namespace
}  // namespace fpi::data
