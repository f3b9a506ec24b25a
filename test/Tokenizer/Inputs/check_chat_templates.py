#!/usr/bin/env python3
"""Kiln's chat-template engine (runtime/lib/ChatTemplate.cpp, through `kiln-tokenize SOURCE chat`)
against Python's jinja2 rendering the same templates as transformers' apply_chat_template does:
an ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, raise_exception, and
transformers' tojson (json.dumps, ensure_ascii=False).

Templates: Llama 3, Llama 2 (with its role-alternation raise_exception), SmolLM (ChatML), a
multi-line one leaning on whitespace control, and one exercising every construct the engine
takes (namespaces, slices, filters, tests, loop variables, for-else, methods, arithmetic).
Each is rendered for several conversations (unicode, newlines, quotes, emoji) with
add_generation_prompt on and off; the outputs must be byte-identical, and a template that
raises must fail in both with the same message.

    check_chat_templates.py TOKENIZER_SOURCE WORKDIR
Prints one `ok:` line per template, or FAIL lines, and exits 1 on any difference.
"""
import json
import os
import subprocess
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATES = {
    "llama3": (
        "{% set loop_messages = messages %}{% for message in loop_messages %}"
        "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
        "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
        "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
        "{% endif %}"),
    "llama2": (
        "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
        "{% set system_message = messages[0]['content'] %}{% else %}"
        "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
        "{% for message in loop_messages %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
        "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
        "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
        "{% else %}{% set content = message['content'] %}{% endif %}"
        "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
        "{% endif %}{% endfor %}"),
    "smollm": (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
        "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|im_start|>assistant\\n' }}{% endif %}"),
    "whitespace": """{%- for message in messages %}
    {%- if message.role == 'system' %}
<<{{ message.content | upper }}>>
    {% elif message.role == 'user' -%}
  U: {{ message.content }}
    {%- else %}
  A: {{ message.content ~ '!' }}
    {%- endif %}
  {# a comment #}
{% endfor -%}
{% if add_generation_prompt %}
A:{% endif %}
""",
    "constructs": """{%- set ns = namespace(count=0, last='') -%}
{%- for m in messages -%}
{%- set ns.count = ns.count + 1 -%}
{%- set ns.last = m['role'] -%}
{{ loop.index }}/{{ loop.length }} {{ loop.revindex0 }} {{ m.role|length }} {{ m.content[:5] }}|{{ m.content[-3:] }}|{{ m['content'].split(' ')|length }}
{%- if loop.last %} last{% endif %}
{%- if 'x' in m.content %} has-x{% elif m.content.startswith('He') %} he{% else %} other{% endif %}
{%- if m.name is defined %} named{% elif m.name is not defined %} anonymous{% endif %}
{%- if loop.previtem is defined %} after-{{ loop.previtem.role }}{% endif %}
{% endfor -%}
count={{ ns.count }} last={{ ns.last }} {{ (ns.count * 3) // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ -2 }} {{ 'a' if ns.count > 1 else 'b' }} {{ 5 / 2 }}
{%- for k, v in {'a': 1, 'b': [1, 2]}.items() %} {{ k }}={{ v }}{% endfor %}
{%- for x in [] %}never{% else %} empty{% endfor %}
{{ messages | tojson }}
{{ range(3) | length }} {{ 'Hello World'.lower() }} {{ '  pad  '.strip() }}|{{ 'abc'.upper() }} {{ none is none }} {{ true and not false }} {{ [1,2] + [3] }} {{ 'x' ~ 1 ~ 2.5 }}
{{ messages[1:] | length }} {{ messages[::-1][0].role }} {{ 'a,b,,c'.split(',') }} {{ 'title case here'.title() }} {{ x | default('dflt') }} {{ '' | default('empty', true) }}
{%- if messages | length > 2 and (messages[0].role == 'system' or not messages[0].content) %} long{% endif %}
{{ 'abc' < 'abd' }} {{ 3 >= 3.0 }} {{ 'b' not in 'abc' }} {{ {'k': 'v'}.get('k') }} {{ {'k': 'v'}.get('z', 'none') }} {{ 'a' * 3 }}
""",
}

CONVERSATIONS = [
    [{"role": "system", "content": "You are terse."},
     {"role": "user", "content": "Hello there"}],
    [{"role": "user", "content": "x marks the spot"},
     {"role": "assistant", "content": "  Indeed.  "},
     {"role": "user", "content": "H\u00e9llo w\u00f6rld \U0001F389\nsecond line \"quoted\" it's"}],
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
]


def jinja_render(source, context):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source).render(**context)


def main():
    source, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    failed = False
    for name, template in TEMPLATES.items():
        tpath = os.path.join(work, name + ".jinja")
        with open(tpath, "w") as f:
            f.write(template)
        cases = errors = 0
        for i, messages in enumerate(CONVERSATIONS):
            for agp in (False, True):
                context = {"messages": messages, "add_generation_prompt": agp,
                           "bos_token": "<s>", "eos_token": "</s>"}
                cpath = os.path.join(work, f"{name}-{i}-{int(agp)}.json")
                with open(cpath, "w") as f:
                    json.dump(context, f, ensure_ascii=False)
                try:
                    want, want_err = jinja_render(template, context), None
                except jinja2.exceptions.TemplateError as e:
                    want, want_err = None, str(e)
                r = subprocess.run(["kiln-tokenize", source, "chat", "--template", tpath,
                                    "--file", cpath], capture_output=True)
                got = r.stdout.decode("utf-8") if r.returncode == 0 else None
                cases += 1
                if want_err is not None:
                    errors += 1
                    ok = r.returncode != 0 and want_err in r.stderr.decode("utf-8")
                    what = f"raises: {want_err!r}"
                else:
                    ok = got == want
                    what = "renders identically"
                if not ok:
                    failed = True
                    print(f"FAIL: {name}, conversation {i}, add_generation_prompt={agp}: {what}\n"
                          f"  jinja2: {want!r} {want_err or ''}\n  kiln:   {got!r} "
                          f"{r.stderr.decode('utf-8').strip()}")
        print(f"ok: {name}: {cases} renderings identical to jinja2's ({errors} raising the "
              f"template's exception in both)" if not failed else f"(after {name})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
