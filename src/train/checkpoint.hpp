// Checkpoint folders of a run directory (see fpi/train/trainer.hpp for the layout and why it is safe).
#pragma once

#include <optional>
#include <string>

#include "fpi/nn/module.hpp"
#include "fpi/state.hpp"

namespace fpi::train {

// The folder a checkpoint path names: a checkpoint folder itself, a link to one (`last`), or its
// model.safetensors.
std::string checkpoint_folder(const std::string& path);

// Writes checkpoints/<tag>/ in full under a temporary name, syncs and renames it, then points the link
// checkpoints/last (and, when `best`, checkpoints/best) at it, and removes the folders no link names.
void write_checkpoint(const std::string& run_dir, const std::string& tag, const nn::Module& model,
                      const State& training, bool best);

// The training state of the checkpoint folder `folder` (training.safetensors).
State read_training_state(const std::string& folder);

// Removes what a crash can leave behind in checkpoints/: temporary folders of unfinished checkpoints.
void remove_unfinished_checkpoints(const std::string& run_dir);

}  // namespace fpi::train
