//===- kiln.cpp - The Python package `kiln` (pybind11 over kiln.h) --------===//
//
//   import kiln
//   m = kiln.load("model.kiln")
//   for piece in m.generate("def fibonacci(n):", max_new_tokens=64):
//       print(piece, end="", flush=True)
//
// Model.generate yields text as it becomes final (a piece may span several
// tokens; the concatenation is the decoded continuation); generate_ids
// yields token ids; chat(messages) replies to a conversation through the
// chat template. Errors raise kiln.Error with the runtime's message. A
// model keeps its conversation (KV cache) between calls; reset() starts over.
//
//===----------------------------------------------------------------------===//

#include "kiln/kiln.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

PyObject *errorType = nullptr;

[[noreturn]] void raise() {
  PyErr_SetString(errorType, kiln_last_error());
  throw py::error_already_set();
}

void check(kiln_status s) {
  if (s == KILN_ERROR)
    raise();
}

class Model {
public:
  explicit Model(const std::string &path) {
    kiln_model *m = nullptr;
    kiln_status s;
    {
      py::gil_scoped_release release;
      s = kiln_load(path.c_str(), &m);
    }
    check(s);
    model.reset(m);
  }
  kiln_model *get() const { return model.get(); }

  std::vector<int64_t> tokenize(const std::string &text, bool special) {
    size_t count = 0;
    std::vector<int64_t> ids(text.size() + 8);
    if (kiln_tokenize(get(), text.c_str(), special, ids.data(), ids.size(),
                      &count) != KILN_OK) {
      if (count <= ids.size())
        raise();
      ids.resize(count);
      check(kiln_tokenize(get(), text.c_str(), special, ids.data(), ids.size(),
                          &count));
    }
    ids.resize(count);
    return ids;
  }

  std::string detokenize(const std::vector<int64_t> &ids) {
    size_t length = 0;
    std::string text(ids.size() * 16 + 16, '\0');
    if (kiln_detokenize(get(), ids.data(), ids.size(), text.data(), text.size(),
                        &length) != KILN_OK) {
      if (length + 1 <= text.size())
        raise();
      text.resize(length + 1);
      check(kiln_detokenize(get(), ids.data(), ids.size(), text.data(),
                            text.size(), &length));
    }
    text.resize(length);
    return text;
  }

private:
  struct Free {
    void operator()(kiln_model *m) const { kiln_free(m); }
  };
  std::unique_ptr<kiln_model, Free> model;
};

/// The iterator generate() and generate_ids() return: kiln_next per step.
class Generation {
public:
  Generation(py::object owner, Model &model, bool text)
      : owner(std::move(owner)), model(model), text(text) {}

  py::object next() {
    while (!done) {
      int64_t token;
      const char *piece;
      size_t length;
      kiln_status s;
      {
        py::gil_scoped_release release;
        s = kiln_next(model.get(), &token, &piece, &length);
      }
      check(s);
      if (s == KILN_DONE)
        done = true;
      if (!text) {
        if (s == KILN_OK)
          return py::int_(token);
        continue;
      }
      if (length)
        return py::reinterpret_steal<py::object>(PyUnicode_DecodeUTF8(
            piece, static_cast<Py_ssize_t>(length), "replace"));
    }
    throw py::stop_iteration();
  }

private:
  py::object owner; // keeps the Model alive
  Model &model;
  bool text;
  bool done = false;
};

kiln_generate_options options(int64_t maxNewTokens, double temperature,
                              int64_t topK, double topP, uint64_t seed,
                              double minP) {
  kiln_generate_options o;
  kiln_default_options(&o);
  o.max_new_tokens = static_cast<int32_t>(maxNewTokens);
  o.temperature = static_cast<float>(temperature);
  o.top_k = static_cast<int32_t>(topK);
  o.top_p = static_cast<float>(topP);
  o.seed = seed;
  o.min_p = static_cast<float>(minP);
  return o;
}

} // namespace

PYBIND11_MODULE(kiln, m) {
  m.doc() = "Kiln's runtime: load a compiled model (model.kiln) and generate";
  static py::exception<std::runtime_error> error(m, "Error");
  errorType = error.ptr();
  m.attr("__version__") = kiln_version();

  py::class_<Generation>(m, "Generation")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &Generation::next);

  py::class_<Model>(m, "Model")
      .def_property_readonly("vocab_size",
                             [](Model &s) { return kiln_vocab_size(s.get()); })
      .def_property_readonly(
          "context_length",
          [](Model &s) { return kiln_context_length(s.get()); })
      .def_property_readonly("position",
                             [](Model &s) { return kiln_position(s.get()); })
      .def_property_readonly(
          "has_tokenizer",
          [](Model &s) { return kiln_has_tokenizer(s.get()) != 0; })
      .def("tokenize", &Model::tokenize, py::arg("text"),
           py::arg("add_special_tokens") = true)
      .def("detokenize", &Model::detokenize, py::arg("ids"))
      .def(
          "generate",
          [](py::object self, const std::string &prompt, int64_t maxNewTokens,
             double temperature, int64_t topK, double topP, uint64_t seed,
             double minP) {
            Model &model = self.cast<Model &>();
            kiln_generate_options o =
                options(maxNewTokens, temperature, topK, topP, seed, minP);
            kiln_status s;
            {
              py::gil_scoped_release release;
              s = kiln_begin(model.get(), prompt.c_str(), &o);
            }
            check(s);
            return Generation(self, model, /*text=*/true);
          },
          py::arg("prompt"), py::arg("max_new_tokens") = 64,
          py::arg("temperature") = 0.0, py::arg("top_k") = 0,
          py::arg("top_p") = 1.0, py::arg("seed") = 0, py::arg("min_p") = 0.0,
          "Yields the text of the continuation as it becomes final.")
      .def(
          "generate_ids",
          [](py::object self, const std::vector<int64_t> &prompt,
             int64_t maxNewTokens, double temperature, int64_t topK,
             double topP, uint64_t seed, double minP) {
            Model &model = self.cast<Model &>();
            kiln_generate_options o =
                options(maxNewTokens, temperature, topK, topP, seed, minP);
            kiln_status s;
            {
              py::gil_scoped_release release;
              s = kiln_begin_ids(model.get(), prompt.data(), prompt.size(), &o);
            }
            check(s);
            return Generation(self, model, /*text=*/false);
          },
          py::arg("prompt"), py::arg("max_new_tokens") = 64,
          py::arg("temperature") = 0.0, py::arg("top_k") = 0,
          py::arg("top_p") = 1.0, py::arg("seed") = 0, py::arg("min_p") = 0.0,
          "Yields the generated token ids.")
      .def(
          "chat",
          [](py::object self, const py::list &messages, int64_t maxNewTokens,
             double temperature, int64_t topK, double topP, uint64_t seed,
             double minP) {
            Model &model = self.cast<Model &>();
            std::vector<std::string> fields;
            fields.reserve(2 * messages.size());
            for (py::handle m : messages) {
              py::dict d = m.cast<py::dict>();
              fields.push_back(d["role"].cast<std::string>());
              fields.push_back(d["content"].cast<std::string>());
            }
            std::vector<kiln_message> list;
            for (size_t i = 0; i < fields.size(); i += 2)
              list.push_back({fields[i].c_str(), fields[i + 1].c_str()});
            kiln_generate_options o =
                options(maxNewTokens, temperature, topK, topP, seed, minP);
            kiln_status s;
            {
              py::gil_scoped_release release;
              s = kiln_begin_chat(model.get(), list.data(), list.size(), &o);
            }
            check(s);
            return Generation(self, model, /*text=*/true);
          },
          py::arg("messages"), py::arg("max_new_tokens") = 64,
          py::arg("temperature") = 0.0, py::arg("top_k") = 0,
          py::arg("top_p") = 1.0, py::arg("seed") = 0, py::arg("min_p") = 0.0,
          "The reply to a conversation (a list of {'role', 'content'} "
          "dicts) through the chat template, yielded as text; what the KV "
          "cache holds of the conversation is not run again.")
      .def("reset", [](Model &s) { check(kiln_reset(s.get())); });

  m.def(
      "load", [](const std::string &path) { return Model(path); },
      py::arg("path"), "Opens a compiled model (model.kiln).");
}
