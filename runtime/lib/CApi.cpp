//===- CApi.cpp - The C API (kiln.h) over Session, Tokenizer, Sampler -----===//
//
// A kiln_model is an artifact, its session and tokenizer, and the state of
// one conversation: the next free position and the last generated token,
// which the cache does not hold yet (it is fed before the next prompt). The
// generation loop is kiln-run's: prefill, then one decode per token, the
// argmax read from the device when sampling greedily.
//
//===----------------------------------------------------------------------===//

#include "kiln/kiln.h"

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/ChatTemplate.h"
#include "kiln/runtime/Sampler.h"
#include "kiln/runtime/Session.h"
#include "kiln/runtime/Tokenizer.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace kiln::runtime;

namespace {
thread_local std::string lastError;

kiln_status failWith(std::string message) {
  lastError = std::move(message);
  return KILN_ERROR;
}
} // namespace

struct kiln_model {
  std::shared_ptr<const Artifact> artifact;
  std::unique_ptr<Session> session;
  std::unique_ptr<Tokenizer> tokenizer; // null without one
  int64_t position = 0;                 // the next position to fill
  int64_t unfed = -1;       // the last generated token, not in the cache yet
  std::vector<int64_t> fed; // the tokens at positions [0, position)
  std::unique_ptr<ChatTemplate> chat; // parsed on first use

  // The generation in progress.
  bool active = false;
  bool deviceArgmax = false;
  std::optional<Sampler> sampler;
  std::optional<StreamDecoder> stream;
  int64_t remaining = 0, produced = 0;
  std::string text; // what kiln_next() returned last
};

extern "C" {

const char *kiln_version(void) { return "0.1.0"; }

const char *kiln_last_error(void) { return lastError.c_str(); }

kiln_status kiln_load(const char *path, kiln_model **model) {
  if (!model)
    return failWith("kiln_load: model is NULL");
  *model = nullptr;
  if (!path)
    return failWith("kiln_load: path is NULL");
  std::string error;
  std::shared_ptr<const Artifact> artifact =
      Artifact::open(path, Artifact::OpenOptions(), &error);
  if (!artifact)
    return failWith(error);
  auto m = std::make_unique<kiln_model>();
  m->artifact = artifact;
  if (!artifact->tokenizer().empty()) {
    m->tokenizer = Tokenizer::create(artifact->tokenizer(), &error);
    if (!m->tokenizer)
      return failWith(std::string(path) + ": " + error);
  }
  m->session = Session::create(artifact, &error);
  if (!m->session)
    return failWith(error);
  *model = m.release();
  return KILN_OK;
}

void kiln_free(kiln_model *model) { delete model; }

int64_t kiln_vocab_size(const kiln_model *model) {
  return model ? model->session->vocabSize() : 0;
}
int64_t kiln_context_length(const kiln_model *model) {
  return model ? model->session->maxSeqLen() : 0;
}
int64_t kiln_position(const kiln_model *model) {
  return model ? model->position + (model->unfed >= 0 ? 1 : 0) : 0;
}
int kiln_has_tokenizer(const kiln_model *model) {
  return model && model->tokenizer ? 1 : 0;
}

static kiln_status needTokenizer(const kiln_model *model, const char *what) {
  if (!model)
    return failWith(std::string(what) + ": model is NULL");
  if (!model->tokenizer)
    return failWith(std::string(what) +
                    ": the artifact has no tokenizer; compile it with "
                    "tokenizer.json beside model.onnx (or --tokenizer DIR)");
  return KILN_OK;
}

kiln_status kiln_tokenize(kiln_model *model, const char *text,
                          int add_special_tokens, int64_t *ids, size_t capacity,
                          size_t *count) {
  if (needTokenizer(model, "kiln_tokenize") != KILN_OK)
    return KILN_ERROR;
  if (!text || !count || (capacity && !ids))
    return failWith("kiln_tokenize: text, count and ids must not be NULL");
  Tokenizer::EncodeOptions options;
  options.addSpecialTokens = add_special_tokens != 0;
  std::vector<int64_t> out;
  std::string error;
  if (!model->tokenizer->encode(text, options, &out, &error))
    return failWith("kiln_tokenize: " + error);
  *count = out.size();
  if (out.size() > capacity)
    return failWith("kiln_tokenize: the text has " +
                    std::to_string(out.size()) +
                    " tokens, the buffer room for " + std::to_string(capacity));
  std::copy(out.begin(), out.end(), ids);
  return KILN_OK;
}

kiln_status kiln_detokenize(kiln_model *model, const int64_t *ids, size_t count,
                            char *text, size_t capacity, size_t *length) {
  if (needTokenizer(model, "kiln_detokenize") != KILN_OK)
    return KILN_ERROR;
  if ((count && !ids) || !length || (capacity && !text))
    return failWith("kiln_detokenize: ids, text and length must not be NULL");
  std::string out = model->tokenizer->decode(
      std::vector<int64_t>(ids, ids + count), /*skipSpecialTokens=*/true);
  *length = out.size();
  if (out.size() + 1 > capacity)
    return failWith("kiln_detokenize: the text needs " +
                    std::to_string(out.size() + 1) + " bytes, the buffer has " +
                    std::to_string(capacity));
  std::memcpy(text, out.data(), out.size());
  text[out.size()] = '\0';
  return KILN_OK;
}

void kiln_default_options(kiln_generate_options *options) {
  if (!options)
    return;
  options->max_new_tokens = 64;
  options->temperature = 0.0f;
  options->top_k = 0;
  options->top_p = 1.0f;
  options->seed = 0;
  options->min_p = 0.0f;
}

kiln_status kiln_begin_ids(kiln_model *model, const int64_t *prompt,
                           size_t count, const kiln_generate_options *options) {
  if (!model)
    return failWith("kiln_begin: model is NULL");
  model->active = false;
  kiln_generate_options o;
  kiln_default_options(&o);
  if (options)
    o = *options;
  SamplerOptions so;
  so.temperature = o.temperature;
  so.topK = o.top_k;
  so.topP = o.top_p;
  so.minP = o.min_p;
  so.seed = o.seed;
  std::string error;
  if (!Sampler::validate(so, &error))
    return failWith("kiln_begin: " + error);
  if (o.max_new_tokens < 0)
    return failWith("kiln_begin: max_new_tokens is negative");
  if (count && !prompt)
    return failWith("kiln_begin: prompt is NULL");
  // The token the last generation ended with goes in first.
  std::vector<int64_t> tokens;
  if (model->unfed >= 0)
    tokens.push_back(model->unfed);
  tokens.insert(tokens.end(), prompt, prompt + count);
  if (tokens.empty())
    return failWith("kiln_begin: the prompt is empty");
  const int64_t vocab = model->session->vocabSize();
  for (int64_t id : tokens)
    if (id < 0 || id >= vocab)
      return failWith("kiln_begin: token id " + std::to_string(id) +
                      " is outside the vocabulary [0, " +
                      std::to_string(vocab) + ")");
  const int64_t context = model->session->maxSeqLen();
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t decodes = std::max<int64_t>(o.max_new_tokens - 1, 0);
  if (model->position + n + decodes > context)
    return failWith("kiln_begin: " + std::to_string(n) + " prompt tokens and " +
                    std::to_string(o.max_new_tokens) + " new ones after " +
                    std::to_string(model->position) +
                    " positions do not fit the context of " +
                    std::to_string(context) +
                    " tokens (kiln_reset starts over)");
  model->sampler.emplace(so, vocab);
  // The device picks the token: greedy, or drawn there (GPU artifacts).
  model->deviceArgmax = model->session->hasArgmax() &&
                        (so.greedy() || model->session->samplesOnDevice());
  model->session->setKeepLogits(!model->deviceArgmax);
  model->session->setSampling(0, so);
  if (!model->session->prefill(tokens, model->position, &error))
    return failWith(error);
  model->position += n;
  model->fed.insert(model->fed.end(), tokens.begin(), tokens.end());
  model->unfed = -1;
  if (model->tokenizer)
    model->stream.emplace(*model->tokenizer, /*skipSpecialTokens=*/true);
  else
    model->stream.reset();
  model->remaining = o.max_new_tokens;
  model->produced = 0;
  model->active = true;
  return KILN_OK;
}

kiln_status kiln_begin(kiln_model *model, const char *prompt,
                       const kiln_generate_options *options) {
  if (needTokenizer(model, "kiln_begin") != KILN_OK)
    return KILN_ERROR;
  if (!prompt)
    return failWith("kiln_begin: prompt is NULL");
  std::vector<int64_t> ids;
  std::string error;
  Tokenizer::EncodeOptions encode;
  // A continued conversation gets no second BOS.
  encode.addSpecialTokens = model->position == 0 && model->unfed < 0;
  if (!model->tokenizer->encode(prompt, encode, &ids, &error))
    return failWith("kiln_begin: the prompt: " + error);
  if (ids.empty())
    return failWith("kiln_begin: the prompt encodes to no tokens");
  return kiln_begin_ids(model, ids.data(), ids.size(), options);
}

kiln_status kiln_begin_chat(kiln_model *model, const kiln_message *messages,
                            size_t count,
                            const kiln_generate_options *options) {
  if (needTokenizer(model, "kiln_begin_chat") != KILN_OK)
    return KILN_ERROR;
  if (count && !messages)
    return failWith("kiln_begin_chat: messages is NULL");
  std::string error;
  if (!model->chat) {
    if (model->tokenizer->chatTemplate().empty())
      return failWith("kiln_begin_chat: the tokenizer has no chat_template "
                      "(tokenizer_config.json)");
    model->chat = ChatTemplate::parse(model->tokenizer->chatTemplate(), &error);
    if (!model->chat)
      return failWith("kiln_begin_chat: " + error);
  }
  std::vector<ChatMessage> conversation;
  for (size_t i = 0; i < count; ++i) {
    if (!messages[i].role || !messages[i].content)
      return failWith("kiln_begin_chat: message " + std::to_string(i) +
                      " has a NULL role or content");
    conversation.push_back({messages[i].role, messages[i].content});
  }
  std::string text;
  if (!model->chat->render(conversation, /*addGenerationPrompt=*/true,
                           model->tokenizer->bosToken(),
                           model->tokenizer->eosToken(), &text, &error))
    return failWith("kiln_begin_chat: " + error);
  // The template writes the special tokens itself.
  Tokenizer::EncodeOptions encode;
  encode.addSpecialTokens = false;
  std::vector<int64_t> ids;
  if (!model->tokenizer->encode(text, encode, &ids, &error))
    return failWith("kiln_begin_chat: " + error);
  if (ids.empty())
    return failWith("kiln_begin_chat: the conversation renders to no tokens");
  // Keep what the cache holds of it (at most all but its last token, whose
  // logits start the reply) and run the rest.
  size_t shared = 0;
  while (shared < model->fed.size() && shared < ids.size() &&
         model->fed[shared] == ids[shared])
    ++shared;
  shared = std::min(shared, ids.size() - 1);
  model->fed.resize(shared);
  model->position = static_cast<int64_t>(shared);
  model->unfed = -1;
  return kiln_begin_ids(model, ids.data() + shared, ids.size() - shared,
                        options);
}

/// Ends the generation: the text still held back, *token = -1.
static kiln_status finish(kiln_model *model, int64_t *token, const char **text,
                          size_t *length) {
  model->active = false;
  model->text.clear();
  if (model->stream)
    model->stream->finish(&model->text);
  if (token)
    *token = -1;
  if (text)
    *text = model->text.c_str();
  if (length)
    *length = model->text.size();
  return KILN_DONE;
}

kiln_status kiln_next(kiln_model *model, int64_t *token, const char **text,
                      size_t *length) {
  if (!model)
    return failWith("kiln_next: model is NULL");
  if (!model->active || model->remaining == 0)
    return finish(model, token, text, length);
  std::string error;
  if (model->produced > 0) {
    // Feed the previous token; the cache then holds it.
    if (!model->session->decode(model->unfed, model->position, &error)) {
      model->active = false;
      return failWith(error);
    }
    ++model->position;
    model->fed.push_back(model->unfed);
    model->unfed = -1;
  }
  int64_t id = model->deviceArgmax
                   ? model->session->argmax(0)
                   : model->sampler->sample(model->session->logits(0));
  model->unfed = id;
  ++model->produced;
  --model->remaining;
  if (model->tokenizer) {
    const std::vector<int64_t> &eos = model->tokenizer->eosIds();
    if (std::count(eos.begin(), eos.end(), id))
      return finish(model, token, text, length);
  }
  model->text.clear();
  if (model->stream && !model->stream->step(id, &model->text, &error)) {
    model->active = false;
    return failWith(error);
  }
  if (token)
    *token = id;
  if (text)
    *text = model->text.c_str();
  if (length)
    *length = model->text.size();
  return KILN_OK;
}

kiln_status kiln_generate(kiln_model *model, const char *prompt,
                          const kiln_generate_options *options,
                          kiln_token_callback callback, void *user) {
  if (kiln_begin(model, prompt, options) != KILN_OK)
    return KILN_ERROR;
  while (true) {
    int64_t token;
    const char *text;
    size_t length;
    kiln_status s = kiln_next(model, &token, &text, &length);
    if (s == KILN_ERROR)
      return s;
    if (callback && (s == KILN_OK || length) &&
        callback(user, token, text, length)) {
      finish(model, nullptr, nullptr, nullptr);
      return KILN_OK;
    }
    if (s == KILN_DONE)
      return KILN_OK;
  }
}

kiln_status kiln_reset(kiln_model *model) {
  if (!model)
    return failWith("kiln_reset: model is NULL");
  std::string error;
  if (!model->session->clearKvCache(&error))
    return failWith(error);
  model->position = 0;
  model->unfed = -1;
  model->fed.clear();
  model->active = false;
  return KILN_OK;
}

} // extern "C"
