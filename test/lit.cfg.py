# -*- Python -*-
import os

import lit.formats
from lit.llvm import llvm_config

config.name = "Kiln"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.kiln_obj_root, "test")

# Captured FileCheck variables do not leak between CHECK-LABEL blocks.
config.environment["FILECHECK_OPTS"] = "--enable-var-scope"

# --param kiln_tools_dir=DIR runs the tests with the tools in DIR instead, from
# their RUN lines and from the Python scripts they start (which find them on
# PATH): scripts/fuzz.sh passes kiln-compile and the runtime's tools built with
# ASan + UBSan.
# The build's own tools (kiln-opt, kiln-fake-artifact) stay on PATH behind them.
build_tools_dir = config.kiln_tools_dir
config.kiln_tools_dir = lit_config.params.get("kiln_tools_dir", config.kiln_tools_dir)

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", build_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.kiln_tools_dir, append_path=True)

# use_default_substitutions() maps %python to the interpreter running lit; the
# tests need the configured one (the venv, with numpy and onnx).
config.substitutions = [s for s in config.substitutions if s[0] != "%python"]
config.substitutions.append(("%python", config.python_executable))
config.substitutions.append(("%kiln_src", config.kiln_src_root))
config.substitutions.append(("%examples", os.path.join(config.kiln_src_root, "examples")))
# The Python package (python/): the directory to put on PYTHONPATH.
config.substitutions.append(("%kiln_python", os.path.join(config.kiln_obj_root, "python")))


from lit.llvm.subst import ToolSubst
llvm_config.add_tool_substitutions(
    [ToolSubst(t, unresolved="ignore")
     for t in ["kiln-opt", "kiln-compile", "kiln-run", "kiln-serve", "kiln-tokenize",
               "kiln-generate-c"]],
    [config.kiln_tools_dir])
