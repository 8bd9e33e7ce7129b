//! scratch
use ciphervec::{Database, DatabaseOptions, IndexKey};
fn main() -> ciphervec::Result<()> {
    let key = IndexKey::from_bytes(&[0x5a; 32])?;
    let budget: usize = std::env::args().nth(1).map_or(0, |a| a.parse().unwrap());
    let mut t_all = Vec::new();
    for _ in 0..9 {
        let t = std::time::Instant::now();
        let opts = if budget == 1 {
            DatabaseOptions::default()
        } else {
            DatabaseOptions::default().cache_budget(0)
        };
        let index = Database::open_url_with("target/open-time-1000000-128", opts)?
            .open_index_read_only("bench", &key)?;
        t_all.push(t.elapsed().as_secs_f64() * 1e3);
        drop(index);
    }
    t_all.sort_by(f64::total_cmp);
    println!("{:.1}", t_all[t_all.len() / 2]);
    Ok(())
}
