// Checkpoint folders: model.safetensors (the state dict, PyTorch's names) and training.safetensors (the
// rest of a run's state, laid out by fpi::flatten), written in full before anything points at them.
#include "train/checkpoint.hpp"

#include <unistd.h>

#include <filesystem>
#include <set>
#include <system_error>

#include "fpi/io/file.hpp"
#include "fpi/io/safetensors.hpp"
#include "fpi/train/trainer.hpp"

namespace fpi::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kTemporaryPrefix = ".unfinished-";

// The folder a link in checkpoints/ names, or empty when the link is absent.
std::string link_target(const fs::path& link) {
  std::error_code error;
  const fs::path target = fs::read_symlink(link, error);
  return error ? std::string() : target.filename().string();
}

// Every entry of `folder`, listed before any is removed; a folder that cannot be read is an fpi::Error,
// not the std::filesystem_error the throwing iterator would let through.
std::vector<fs::directory_entry> folder_entries(const fs::path& folder) {
  std::error_code error;
  std::vector<fs::directory_entry> entries;
  for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) entries.push_back(*it);
  FPI_CHECK(!error, "cannot list '", folder.string(), "': ", error.message());
  return entries;
}

}  // namespace

std::string checkpoint_folder(const std::string& path) {
  std::error_code error;
  const fs::path given(path);
  FPI_CHECK(fs::exists(given, error), "checkpoint '", path, "' does not exist");
  if (fs::is_directory(given, error)) {
    FPI_CHECK(fs::exists(given / "model.safetensors", error), "checkpoint '", path,
              "' is a folder without model.safetensors");
    return given.string();
  }
  FPI_CHECK(given.filename() == "model.safetensors", "checkpoint '", path,
            "': expected a checkpoint folder or its model.safetensors");
  return given.parent_path().empty() ? std::string(".") : given.parent_path().string();
}

void write_checkpoint(const std::string& run_dir, const std::string& tag, const nn::Module& model,
                      const State& training, bool best) {
  const fs::path folder = fs::path(run_dir) / "checkpoints";
  const fs::path temporary = folder / (kTemporaryPrefix + tag);
  const fs::path final_path = folder / tag;
  std::error_code error;
  fs::create_directories(folder, error);
  FPI_CHECK(!error, "cannot create '", folder.string(), "': ", error.message());
  fs::remove_all(temporary, error);
  fs::create_directory(temporary, error);
  FPI_CHECK(!error, "cannot create '", temporary.string(), "': ", error.message());

  io::save_safetensors((temporary / "model.safetensors").string(), model.state_dict(),
                       {{"format", "pt"}, {"written_by", "fpi"}});
  const FlatState flat = flatten(training);
  io::save_safetensors((temporary / "training.safetensors").string(), flat.tensors, flat.metadata);
  io::fsync_directory(temporary.string());

  // A folder of the same tag is a leftover of a run that crashed after writing it but before it was
  // linked (a resumed run then repeats those steps); it is never one that `last` or `best` names.
  fs::remove_all(final_path, error);
  fs::rename(temporary, final_path, error);
  FPI_CHECK(!error, "cannot rename '", temporary.string(), "' to '", final_path.string(), "': ", error.message());
  io::fsync_directory(folder.string());
  io::replace_symlink_atomically((folder / "last").string(), tag);
  if (best) io::replace_symlink_atomically((folder / "best").string(), tag);

  const std::set<std::string> linked{link_target(folder / "last"), link_target(folder / "best")};
  for (const fs::directory_entry& entry : folder_entries(folder)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_symlink() || linked.count(name) || name.starts_with(kTemporaryPrefix)) continue;
    fs::remove_all(entry.path(), error);
  }
}

State read_training_state(const std::string& folder) {
  const std::string path = (fs::path(folder) / "training.safetensors").string();
  io::Safetensors file = io::load_safetensors(path);
  try {
    return unflatten(FlatState{std::move(file.tensors), std::move(file.metadata)});
  } catch (const Error& e) {
    fail(path, ": not an fpi training state: ", e.what());
  }
}

std::optional<double> checkpoint_f1_threshold(const std::string& checkpoint) {
  const std::string folder = checkpoint_folder(checkpoint);
  const State state = read_training_state(folder);
  StateReader in(state, folder + "/training.safetensors");
  if (!in.contains("trainer.f1_threshold")) return std::nullopt;
  return in.get_double("trainer.f1_threshold");
}

void remove_unfinished_checkpoints(const std::string& run_dir) {
  const fs::path folder = fs::path(run_dir) / "checkpoints";
  std::error_code error;
  if (!fs::is_directory(folder, error)) return;
  for (const fs::directory_entry& entry : folder_entries(folder))
    if (entry.path().filename().string().starts_with(kTemporaryPrefix)) fs::remove_all(entry.path(), error);
}

void load_weights(nn::Module& model, const std::string& checkpoint) {
  const std::string path = (fs::path(checkpoint_folder(checkpoint)) / "model.safetensors").string();
  const io::Safetensors file = io::load_safetensors(path);
  const nn::StateDict expected = model.state_dict();
  std::set<std::string> known;
  for (const auto& [name, tensor] : expected) {
    known.insert(name);
    const Tensor* stored = file.find(name);
    FPI_CHECK(stored, path, ": no tensor '", name, "', which the model has; is this a checkpoint of another model?");
    // A buffer registered empty (a Lipschitz bound's vectors before their first use) takes the stored shape.
    FPI_CHECK(stored->shape() == tensor.shape() || tensor.numel() == 0, path, ": ", name, ": shape ",
              shape_str(stored->shape()), " in the checkpoint, ", shape_str(tensor.shape()), " in the model");
  }
  for (const auto& [name, tensor] : file.tensors)
    FPI_CHECK(known.count(name), path, ": tensor '", name,
              "' is not in the model; is this a checkpoint of another model?");
  model.load_state_dict(file.tensors, /*strict=*/true);
}

}  // namespace fpi::train
