#!/usr/bin/env python3
"""kiln.Model.chat (kiln_begin_chat) on an artifact whose tokenizer has a chat template:
    python_chat.py WITH_TEMPLATE.kiln WITHOUT_TEMPLATE.kiln
Prints each turn's reply (repr), whether the second turn equals the same conversation run
from an empty cache, and the error without a template."""
import sys

import kiln

m = kiln.load(sys.argv[1])
conversation = [{"role": "system", "content": "x"}, {"role": "user", "content": "Hi"}]
first = "".join(m.chat(conversation, max_new_tokens=20))
print(f"turn 1: {first!r}")
conversation += [{"role": "assistant", "content": first}, {"role": "user", "content": "H"}]
second = "".join(m.chat(conversation, max_new_tokens=13))  # the context is 32
print(f"turn 2: {second!r}")
m.reset()
again = "".join(m.chat(conversation, max_new_tokens=13))
print(f"turn 2 from an empty cache: {'same' if again == second else 'DIFFERENT'}")
try:
    kiln.load(sys.argv[2]).chat(conversation)
    print("FAIL: no error without a chat template")
except kiln.Error as e:
    print(f"kiln.Error: {e}")
