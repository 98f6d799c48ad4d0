//! temporary
use synod_core::{Call, CheckCall, CheckRequest, Program, Value};
fn main() {
    let sb = synod_exec::Sandbox::new(std::env::temp_dir().join("sbxbench"), synod_eval::checks::eval_limits()).unwrap();
    for k in [1usize, 4] {
        let mut prog = Program::single("m0", "def f(x):\n    return x*2\n");
        let mut fm = std::collections::BTreeMap::new();
        let mut calls = vec![];
        for j in 0..k {
            let name = format!("m{j}");
            prog.modules.insert(name.clone(), format!("def f_{j}(x):\n    return x*2\n"));
            fm.insert(format!("f_{j}"), name);
            for i in 0..300 { calls.push(CheckCall { call: Call { function: format!("f_{j}"), args: vec![Value::Int(i)] }, expect: None }); }
        }
        let req = CheckRequest { program: prog, function_modules: fm.into_iter().collect(), interface: vec![], calls };
        let t = std::time::Instant::now();
        for _ in 0..10 { let r = sb.run(&req).unwrap(); assert!(r.load_error.is_none(), "{:?}", r.load_error); }
        println!("k={k}: {:.0} ms/run", t.elapsed().as_secs_f64() * 100.0);
    }
}
