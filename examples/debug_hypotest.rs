//! Debug: print the fits behind one asymptotic hypotest of a ROOT validation case.
use gradfit::fit::FitOptions;
use gradfit::infer::{AsymptoticCalculator, Problem, TestStat};
use gradfit::model::{HistFactoryModel, InterpCode, ModelOptions};
use gradfit::workspace::{ReadOptions, Workspace};
fn main() {
    let path = std::env::args().nth(1).expect("validation file");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let code = |k: &str| {
        v["interpolation"][k]
            .as_str()
            .unwrap()
            .parse::<InterpCode>()
            .unwrap()
    };
    let opts = ModelOptions {
        normsys_code: code("normsys"),
        histosys_code: code("histosys"),
        ..Default::default()
    };
    let ws =
        Workspace::from_value(v["workspace"].clone(), &[], &path, &ReadOptions::default()).unwrap();
    let m = HistFactoryModel::from_workspace(&ws, &opts, &path).unwrap();
    let kind: TestStat = v["test_statistic"].as_str().unwrap().parse().unwrap();
    let p = Problem::new(&m, m.observed()).unwrap();
    let calc = AsymptoticCalculator::new(p, kind, &FitOptions::default()).unwrap();
    println!("par_names {:?}", m.par_names);
    println!(
        "free obs {:?} {}",
        calc.free_fit().x,
        calc.free_fit().twice_nll
    );
    println!("asimov {:?}", calc.asimov_data());
    let h = calc.hypotest(v["poi_test"].as_f64().unwrap()).unwrap();
    println!("{h:#?}");
}
