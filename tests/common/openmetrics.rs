//! The strict OpenMetrics parser of python's prometheus_client (Debian
//! python3-prometheus-client), run on a text: what a scraper that insists on the format reads.
use std::io::Write;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Parses `text` with prometheus_client.openmetrics.parser (strict) and writes every sample
/// back out as a text-format line (labels unescaped by the parser, escaped again here).
const PY_OM: &str = r#"
import math, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
text = sys.stdin.buffer.read().decode('utf-8')
def esc(v):
    return v.replace('\\', '\\\\').replace('\n', '\\n').replace('"', '\\"')
def num(v):
    if math.isinf(v):
        return '+Inf' if v > 0 else '-Inf'
    return repr(float(v))
out = []
for f in text_string_to_metric_families(text):
    out.append('# TYPE %s %s' % (f.name, f.type))
    for s in f.samples:
        ls = ','.join('%s="%s"' % (k, esc(v)) for k, v in sorted(s.labels.items()))
        out.append('%s{%s} %s' % (s.name, ls, num(s.value)))
sys.stdout.write('\n'.join(out) + '\n')
"#;

/// (accepted, output): output is the re-serialized samples, or the parser's error.
pub fn python_openmetrics(text: &str) -> (bool, String) {
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", PY_OM])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn /usr/bin/python3 (apt-get install python3-prometheus-client)");
    let mut stdin = child.stdin.take().unwrap();
    let data = text.as_bytes().to_vec();
    let w = thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("python OpenMetrics parser did not finish within 30 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = w.join();
    let out = child.wait_with_output().unwrap();
    let ok = out.status.success();
    let s = if ok {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    (ok, s)
}
