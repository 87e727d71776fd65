//! A provider simulator, for demos, benchmarks and tests: it plays Oxlin (token endpoint and
//! event queues) for N users, and sends Linxo and signed Bridge webhooks to a finhook URL.
//! The `finhook-sim` binary is its command line.

pub mod oxlin;
pub mod webhooks;

/// The simulator's user ids: `user-00000`, `user-00001`, ...
pub fn user_id(index: usize) -> String {
    format!("user-{index:05}")
}

/// The password the simulated token endpoint accepts for a user.
pub fn user_password(user: &str) -> String {
    format!("pw-{user}")
}

/// A static access token the simulated API accepts for a user.
pub fn user_static_token(user: &str) -> String {
    format!("static-{user}")
}

/// A finhook users file for `count` simulated users (password grants, or static tokens).
pub fn users_file(count: usize, static_tokens: bool) -> String {
    let mut file = String::with_capacity(count * 80);
    for index in 0..count {
        let user = user_id(index);
        if static_tokens {
            file.push_str(&format!(
                "[[users]]\nid = \"{user}\"\naccess_token = \"{}\"\n\n",
                user_static_token(&user)
            ));
        } else {
            file.push_str(&format!(
                "[[users]]\nid = \"{user}\"\nusername = \"{user}\"\npassword = \"{}\"\n\n",
                user_password(&user)
            ));
        }
    }
    file
}
