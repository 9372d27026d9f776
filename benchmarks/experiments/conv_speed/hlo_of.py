"""Print the optimised HLO of named fusions in the library's meta step: ``hlo_of.py <library_step args> -- NAME...``."""
import os, re, sys
split = sys.argv.index("--")
names, sys.argv = sys.argv[split + 1:], sys.argv[:split]
exec(open(os.path.join(os.path.dirname(__file__), "library_step.py")).read())
text = comp.as_text()
open("/tmp/jaxmeta-step.hlo", "w").write(text)
for name in names:
    for line in text.splitlines():
        if re.search(rf"\b{re.escape(name)} = ", line):
            print(line.strip()[:400])
            called = re.search(r"calls=%?([\w.\-]+)", line)
            if called:
                body = re.search(rf"\n%?{re.escape(called.group(1))} [^\n]*\{{\n(.*?)\n\}}", text, re.S)
                print("  " + (body.group(1)[:3000] if body else "(body not found)").replace("\n", "\n  "))
