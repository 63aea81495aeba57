//! Tests of [`super::parse`] with payloads shaped as in each host's
//! documentation, signed here with ring; and a deterministic fuzz loop
//! showing that no input makes it panic.

use http::{HeaderMap, HeaderName, HeaderValue};
use ring::hmac;
use serde_json::Value;

use super::filter::{decide, skip_marker};
use super::*;

const SECRET: &[u8] = b"It's a Secret to Everybody";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hex::encode(hmac::sign(&key, body).as_ref())
}

/// `fixture` with `edit` applied, as JSON bytes.
fn edited(fixture: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value: Value = serde_json::from_str(fixture).unwrap();
    edit(&mut value);
    serde_json::to_vec(&value).unwrap()
}

fn github(event: &str, body: &[u8]) -> Result<Delivery, HookError> {
    let signature = format!("sha256={}", hmac_hex(SECRET, body));
    let map = headers(&[
        ("X-GitHub-Event", event),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("X-GitHub-Hook-ID", "292430182"),
        ("X-Hub-Signature-256", &signature),
        ("User-Agent", "GitHub-Hookshot/044aadd"),
        ("Content-Type", "application/json"),
    ]);
    parse(&map, body, SECRET)
}

fn push_of(delivery: Delivery) -> Push {
    match delivery.event {
        Event::Push(push) => push,
        other => panic!("expected a push, got {other:?}"),
    }
}

const GITHUB_PUSH: &str = r#"{
  "ref": "refs/heads/main",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
  "repository": {
    "id": 186853002,
    "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
    "name": "Hello-World",
    "full_name": "Codertocat/Hello-World",
    "private": false,
    "owner": {"name": "Codertocat", "login": "Codertocat", "id": 21031067, "type": "User"},
    "html_url": "https://github.com/Codertocat/Hello-World",
    "default_branch": "main",
    "master_branch": "main"
  },
  "pusher": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com"},
  "sender": {"login": "Codertocat", "id": 21031067, "type": "User", "site_admin": false},
  "created": false,
  "deleted": false,
  "forced": false,
  "base_ref": null,
  "compare": "https://github.com/Codertocat/Hello-World/compare/6113728f27ae...0d1a26e67d8f",
  "commits": [
    {
      "id": "a10867b14bb761a232cd80139fbd4c0d33264240",
      "tree_id": "c2a6ad9b9c3f8e0e1e4b4a2f4b3b8a3e5b1c7d90",
      "distinct": true,
      "message": "Add the orders endpoint",
      "timestamp": "2019-05-15T15:19:25-05:00",
      "url": "https://github.com/Codertocat/Hello-World/commit/a10867b14bb761a232cd80139fbd4c0d33264240",
      "author": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com", "username": "Codertocat"},
      "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
      "added": ["api/orders.go"],
      "removed": [],
      "modified": ["go.mod"]
    },
    {
      "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
      "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
      "distinct": true,
      "message": "Update README.md",
      "timestamp": "2019-05-15T15:20:30-05:00",
      "url": "https://github.com/Codertocat/Hello-World/commit/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
      "author": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com", "username": "Codertocat"},
      "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
      "added": [],
      "removed": ["docs/old.md"],
      "modified": ["README.md", "go.mod"]
    }
  ],
  "head_commit": {
    "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
    "distinct": true,
    "message": "Update README.md",
    "timestamp": "2019-05-15T15:20:30-05:00",
    "url": "https://github.com/Codertocat/Hello-World/commit/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    "author": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com", "username": "Codertocat"},
    "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
    "added": [],
    "removed": ["docs/old.md"],
    "modified": ["README.md", "go.mod"]
  }
}"#;

const GITHUB_PING: &str = r#"{
  "zen": "Responsive is better than fast.",
  "hook_id": 292430182,
  "hook": {
    "type": "Repository",
    "id": 292430182,
    "name": "web",
    "active": true,
    "events": ["push", "package"],
    "config": {"content_type": "json", "insecure_ssl": "0", "url": "https://berth.example.com/api/v1/hooks/shop/tok"},
    "updated_at": "2021-05-25T15:34:11Z",
    "created_at": "2021-05-25T15:34:11Z",
    "url": "https://api.github.com/repos/Codertocat/Hello-World/hooks/292430182",
    "test_url": "https://api.github.com/repos/Codertocat/Hello-World/hooks/292430182/test",
    "ping_url": "https://api.github.com/repos/Codertocat/Hello-World/hooks/292430182/pings",
    "deliveries_url": "https://api.github.com/repos/Codertocat/Hello-World/hooks/292430182/deliveries",
    "last_response": {"code": null, "status": "unused", "message": null}
  },
  "repository": {"id": 186853002, "name": "Hello-World", "full_name": "Codertocat/Hello-World"},
  "sender": {"login": "Codertocat", "id": 21031067, "type": "User"}
}"#;

const GITHUB_PACKAGE_PUBLISHED: &str = r#"{
  "action": "published",
  "package": {
    "id": 2190023,
    "name": "shop-api",
    "namespace": "Acme",
    "description": "",
    "ecosystem": "CONTAINER",
    "package_type": "CONTAINER",
    "html_url": "https://github.com/orgs/Acme/packages/container/package/shop-api",
    "created_at": "2024-02-01T10:00:00Z",
    "updated_at": "2024-03-05T08:12:44Z",
    "owner": {"login": "Acme", "id": 38302899, "type": "Organization"},
    "package_version": {
      "id": 183749276,
      "version": "sha256:3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498",
      "name": "sha256:3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498",
      "description": "",
      "summary": "",
      "manifest": "",
      "html_url": "https://github.com/orgs/Acme/packages/container/shop-api/183749276",
      "target_commitish": "main",
      "target_oid": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
      "created_at": "0001-01-01T00:00:00Z",
      "updated_at": "0001-01-01T00:00:00Z",
      "metadata": [],
      "container_metadata": {
        "tag": {"name": "latest", "digest": "sha256:3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498"},
        "labels": {"description": "", "source": "https://github.com/Acme/shop", "revision": "0d1a26e6", "image_url": "", "licenses": "", "all_labels": {}},
        "manifest": {"digest": "sha256:3da1996a", "media_type": "application/vnd.oci.image.index.v1+json", "uri": "repositories/Acme/shop-api/manifests/sha256:3da1996a", "size": 856, "config": {"digest": "", "media_type": "", "size": 0}, "layers": []}
      },
      "package_files": [],
      "installation_command": "docker pull ghcr.io/Acme/shop-api:latest",
      "package_url": "ghcr.io/Acme/shop-api:latest"
    },
    "registry": {
      "about_url": "https://docs.github.com/packages/learn-github-packages/introduction-to-github-packages",
      "name": "GitHub CONTAINER registry",
      "type": "CONTAINER",
      "url": "https://ghcr.io/Acme",
      "vendor": "GitHub Inc"
    }
  },
  "repository": {"id": 186853002, "name": "shop", "full_name": "Acme/shop"},
  "organization": {"login": "Acme", "id": 38302899},
  "sender": {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}
}"#;

const GITEA_PUSH: &str = r#"{
  "ref": "refs/heads/develop",
  "before": "28e1879d029cb852e4844d9c718537df08844e03",
  "after": "bffeb74224043ba2feb48d137756c8a9331c449a",
  "compare_url": "http://localhost:3000/gitea/webhooks/compare/28e1879d029cb852e4844d9c718537df08844e03...bffeb74224043ba2feb48d137756c8a9331c449a",
  "commits": [
    {
      "id": "bffeb74224043ba2feb48d137756c8a9331c449a",
      "message": "Webhooks Yay!",
      "url": "http://localhost:3000/gitea/webhooks/commit/bffeb74224043ba2feb48d137756c8a9331c449a",
      "author": {"name": "Gitea", "email": "someone@gitea.io", "username": "gitea"},
      "committer": {"name": "Gitea", "email": "someone@gitea.io", "username": "gitea"},
      "verification": null,
      "timestamp": "2017-03-13T13:52:11-04:00",
      "added": ["web/app.js"],
      "removed": [],
      "modified": ["README.md"]
    }
  ],
  "total_commits": 1,
  "head_commit": {
    "id": "bffeb74224043ba2feb48d137756c8a9331c449a",
    "message": "Webhooks Yay!",
    "url": "http://localhost:3000/gitea/webhooks/commit/bffeb74224043ba2feb48d137756c8a9331c449a",
    "author": {"name": "Gitea", "email": "someone@gitea.io", "username": "gitea"},
    "committer": {"name": "Gitea", "email": "someone@gitea.io", "username": "gitea"},
    "timestamp": "2017-03-13T13:52:11-04:00",
    "added": ["web/app.js"],
    "removed": [],
    "modified": ["README.md"]
  },
  "repository": {
    "id": 140,
    "owner": {"id": 1, "login": "gitea", "full_name": "Gitea", "email": "someone@gitea.io", "username": "gitea"},
    "name": "webhooks",
    "full_name": "gitea/webhooks",
    "description": "",
    "private": false,
    "fork": false,
    "html_url": "http://localhost:3000/gitea/webhooks",
    "ssh_url": "ssh://gitea@localhost:2222/gitea/webhooks.git",
    "clone_url": "http://localhost:3000/gitea/webhooks.git",
    "default_branch": "master",
    "created_at": "2017-02-26T04:29:06-05:00",
    "updated_at": "2017-03-13T13:51:58-04:00"
  },
  "pusher": {"id": 1, "login": "gitea", "full_name": "Gitea", "email": "someone@gitea.io", "username": "gitea"},
  "sender": {"id": 1, "login": "gitea", "full_name": "Gitea", "email": "someone@gitea.io", "username": "gitea"}
}"#;

const GITLAB_PUSH: &str = r#"{
  "object_kind": "push",
  "event_name": "push",
  "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
  "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
  "ref": "refs/heads/master",
  "ref_protected": true,
  "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
  "message": "Hello World",
  "user_id": 4,
  "user_name": "John Smith",
  "user_username": "jsmith",
  "user_email": "john@example.com",
  "user_avatar": "https://s.gravatar.com/avatar/d4c74594d841139328695756648b6bd6?s=80",
  "project_id": 15,
  "project": {
    "id": 15,
    "name": "Diaspora",
    "description": "",
    "web_url": "http://example.com/mike/diaspora",
    "avatar_url": null,
    "git_ssh_url": "git@example.com:mike/diaspora.git",
    "git_http_url": "http://example.com/mike/diaspora.git",
    "namespace": "Mike",
    "visibility_level": 0,
    "path_with_namespace": "mike/diaspora",
    "default_branch": "master",
    "homepage": "http://example.com/mike/diaspora",
    "url": "git@example.com:mike/diaspora.git",
    "ssh_url": "git@example.com:mike/diaspora.git",
    "http_url": "http://example.com/mike/diaspora.git"
  },
  "repository": {
    "name": "Diaspora",
    "url": "git@example.com:mike/diaspora.git",
    "description": "",
    "homepage": "http://example.com/mike/diaspora",
    "git_http_url": "http://example.com/mike/diaspora.git",
    "git_ssh_url": "git@example.com:mike/diaspora.git",
    "visibility_level": 0
  },
  "commits": [
    {
      "id": "b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327",
      "message": "Update Catalan translation to e38cb41.\n\nSee https://gitlab.com/gitlab-org/gitlab for more information",
      "title": "Update Catalan translation to e38cb41.",
      "timestamp": "2011-12-12T14:27:31+02:00",
      "url": "http://example.com/mike/diaspora/commit/b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327",
      "author": {"name": "Jordi Mallach", "email": "jordi@softcatala.org"},
      "added": ["CHANGELOG"],
      "modified": ["app/controller/application.rb"],
      "removed": []
    },
    {
      "id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
      "message": "fixed readme",
      "title": "fixed readme",
      "timestamp": "2012-01-03T23:36:29+02:00",
      "url": "http://example.com/mike/diaspora/commit/da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
      "author": {"name": "GitLab dev user", "email": "gitlabdev@dv6700.(none)"},
      "added": ["CHANGELOG"],
      "modified": ["app/controller/application.rb"],
      "removed": []
    }
  ],
  "total_commits_count": 4
}"#;

const GITLAB_TAG_PUSH: &str = r#"{
  "object_kind": "tag_push",
  "event_name": "tag_push",
  "before": "0000000000000000000000000000000000000000",
  "after": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
  "ref": "refs/tags/v1.0.0",
  "ref_protected": true,
  "checkout_sha": "5937ac0a7beb003549fc5fd26fc247adbce4a52e",
  "message": "Tag message",
  "user_id": 1,
  "user_name": "John Smith",
  "user_avatar": "https://s.gravatar.com/avatar/d4c74594d841139328695756648b6bd6?s=80",
  "project_id": 1,
  "project": {
    "id": 1,
    "name": "Example",
    "description": "",
    "web_url": "http://example.com/jsmith/example",
    "avatar_url": null,
    "git_ssh_url": "git@example.com:jsmith/example.git",
    "git_http_url": "http://example.com/jsmith/example.git",
    "namespace": "Jsmith",
    "visibility_level": 0,
    "path_with_namespace": "jsmith/example",
    "default_branch": "master",
    "homepage": "http://example.com/jsmith/example",
    "url": "git@example.com:jsmith/example.git",
    "ssh_url": "git@example.com:jsmith/example.git",
    "http_url": "http://example.com/jsmith/example.git"
  },
  "repository": {
    "name": "Example",
    "url": "ssh://git@example.com/jsmith/example.git",
    "description": "",
    "homepage": "http://example.com/jsmith/example",
    "git_http_url": "http://example.com/jsmith/example.git",
    "git_ssh_url": "git@example.com:jsmith/example.git",
    "visibility_level": 0
  },
  "commits": [],
  "total_commits_count": 0
}"#;

const BITBUCKET_PUSH: &str = r#"{
  "actor": {"type": "user", "display_name": "Emma", "uuid": "{f9d4b5b6-93c8-4b1b-9d5e-0c2f4a1b7e23}", "account_id": "557058:c0b72ad0"},
  "repository": {
    "type": "repository",
    "full_name": "team_name/repo_name",
    "name": "repo_name",
    "uuid": "{7c2a3b8e-1f0d-4c1e-8a1b-2d3e4f5a6b7c}",
    "is_private": true,
    "scm": "git",
    "links": {"html": {"href": "https://bitbucket.org/team_name/repo_name"}},
    "workspace": {"type": "workspace", "slug": "team_name", "name": "Team"},
    "project": {"type": "project", "key": "PROJ", "name": "Project"}
  },
  "push": {
    "changes": [
      {
        "new": {
          "type": "branch",
          "name": "main",
          "target": {
            "type": "commit",
            "hash": "709d658dc5b6d6afcd46049c2f332ee3f515a67d",
            "author": {"type": "author", "raw": "Emma <emma@example.com>"},
            "message": "Add the checkout page\n",
            "date": "2015-06-09T03:34:49+00:00",
            "parents": [{"type": "commit", "hash": "1e65c05c1d5171631d92438a13901ca7dae9618c"}],
            "links": {"html": {"href": "https://bitbucket.org/team_name/repo_name/commits/709d658dc5b6"}}
          },
          "links": {"html": {"href": "https://bitbucket.org/team_name/repo_name/branch/main"}}
        },
        "old": {
          "type": "branch",
          "name": "main",
          "target": {
            "type": "commit",
            "hash": "1e65c05c1d5171631d92438a13901ca7dae9618c",
            "message": "old commit message\n",
            "date": "2015-06-08T21:34:56+00:00"
          }
        },
        "links": {"diff": {"href": "https://api.bitbucket.org/2.0/repositories/team_name/repo_name/diff/709d658dc5b6..1e65c05c1d51"}},
        "created": false,
        "forced": false,
        "closed": false,
        "commits": [
          {
            "hash": "709d658dc5b6d6afcd46049c2f332ee3f515a67d",
            "type": "commit",
            "message": "Add the checkout page\n",
            "author": {"type": "author", "raw": "Emma <emma@example.com>"}
          }
        ],
        "truncated": false
      }
    ]
  }
}"#;

const BITBUCKET_SERVER_PUSH: &str = r#"{
  "eventKey": "repo:refs_changed",
  "date": "2017-09-19T09:58:11+1000",
  "actor": {"name": "admin", "emailAddress": "admin@example.com", "id": 1, "displayName": "Administrator", "active": true, "slug": "admin", "type": "NORMAL"},
  "repository": {
    "slug": "repository",
    "id": 84,
    "name": "repository",
    "scmId": "git",
    "state": "AVAILABLE",
    "statusMessage": "Available",
    "forkable": true,
    "project": {"key": "PROJ", "id": 84, "name": "project", "public": false, "type": "NORMAL"},
    "public": false
  },
  "changes": [
    {
      "ref": {"id": "refs/heads/master", "displayId": "master", "type": "BRANCH"},
      "refId": "refs/heads/master",
      "fromHash": "ecddabb624f6f5ba43816f5926e580a5f680a932",
      "toHash": "178864a7d521b6f5e720b386b2c2b0ef8563e0dc",
      "type": "UPDATE"
    }
  ]
}"#;

const DOCKER_HUB_PUSH: &str = r##"{
  "callback_url": "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
  "push_data": {
    "pushed_at": 1417566161,
    "pusher": "trustedbuilder",
    "tag": "latest"
  },
  "repository": {
    "comment_count": 0,
    "date_created": 1417494799,
    "description": "",
    "dockerfile": "#\n# BUILD\u0009\u0009docker build -t svendowideit/apt-cacher .\n# RUN\u0009\u0009docker run -d -p 3142:3142 -name apt-cacher-run apt-cacher\n",
    "full_description": "Docker Hub based automated build from a GitHub repo",
    "is_official": false,
    "is_private": true,
    "is_trusted": true,
    "name": "testhook",
    "namespace": "svendowideit",
    "owner": "svendowideit",
    "repo_name": "svendowideit/testhook",
    "repo_url": "https://registry.hub.docker.com/u/svendowideit/testhook/",
    "star_count": 0,
    "status": "Active"
  }
}"##;

// ---- GitHub ----

#[test]
fn github_push_with_a_good_signature() {
    let delivery = github("push", GITHUB_PUSH.as_bytes()).unwrap();
    assert_eq!(delivery.provider, Provider::Github);
    assert_eq!(
        delivery.delivery_id.as_deref(),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    assert_eq!(
        push_of(delivery),
        Push {
            git_ref: GitRef::Branch("main".into()),
            after: Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".into()),
            deleted: false,
            head_message: Some("Update README.md".into()),
            changed_files: Some(vec![
                "README.md".into(),
                "api/orders.go".into(),
                "docs/old.md".into(),
                "go.mod".into(),
            ]),
            repository: Some("Codertocat/Hello-World".into()),
            default_branch: Some("main".into()),
        }
    );
}

#[test]
fn github_documented_signature_example_verifies() {
    // The example of GitHub's "Validating webhook deliveries" page.
    let map = headers(&[
        ("X-GitHub-Event", "ping"),
        (
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ),
    ]);
    let delivery = parse(&map, b"Hello, World!", SECRET).unwrap();
    assert_eq!(delivery.event, Event::Ping);
    // Upper-case hex is the same signature.
    let map = headers(&[
        ("X-GitHub-Event", "ping"),
        (
            "X-Hub-Signature-256",
            "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17",
        ),
    ]);
    assert!(parse(&map, b"Hello, World!", SECRET).is_ok());
}

#[test]
fn github_wrong_signature_is_refused() {
    let body = GITHUB_PUSH.as_bytes();
    let signature = format!("sha256={}", hmac_hex(b"another secret", body));
    let map = headers(&[
        ("X-GitHub-Event", "push"),
        ("X-Hub-Signature-256", &signature),
    ]);
    let err = parse(&map, body, SECRET).unwrap_err();
    assert_eq!(
        err,
        HookError::BadSignature {
            provider: Provider::Github,
            header: "X-Hub-Signature-256"
        }
    );
    assert_eq!(err.status(), 401);
    assert_eq!(err.code(), "bad_signature");
    assert!(err.to_string().contains("GitHub webhook"));
    // Not hex, a SHA-1 signature, an empty value: all refused.
    for value in ["sha256=zz", "sha1=0123abcd", "", "sha256="] {
        let map = headers(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", value)]);
        assert!(
            matches!(
                parse(&map, body, SECRET),
                Err(HookError::BadSignature { .. })
            ),
            "{value:?}"
        );
    }
}

#[test]
fn github_missing_signature_is_refused() {
    // Only the SHA-1 header, as a webhook without a secret never sends either.
    let map = headers(&[
        ("X-GitHub-Event", "push"),
        (
            "X-Hub-Signature",
            "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6",
        ),
    ]);
    let err = parse(&map, GITHUB_PUSH.as_bytes(), SECRET).unwrap_err();
    assert_eq!(
        err,
        HookError::MissingSignature {
            provider: Provider::Github,
            header: "X-Hub-Signature-256"
        }
    );
    assert_eq!(err.status(), 401);
    assert_eq!(err.code(), "missing_signature");
    assert_eq!(
        err.to_string(),
        "the GitHub delivery has no X-Hub-Signature-256 header: set the webhook's secret at \
         GitHub to the app's webhook secret"
    );
    // A ping is refused the same way: the "Recent deliveries" page then shows why.
    let map = headers(&[("X-GitHub-Event", "ping")]);
    assert!(matches!(
        parse(&map, GITHUB_PING.as_bytes(), SECRET),
        Err(HookError::MissingSignature { .. })
    ));
}

#[test]
fn github_tampered_body_is_refused() {
    let body = GITHUB_PUSH.as_bytes();
    let signature = format!("sha256={}", hmac_hex(SECRET, body));
    let tampered = GITHUB_PUSH.replace("refs/heads/main", "refs/heads/prod");
    let map = headers(&[
        ("X-GitHub-Event", "push"),
        ("X-Hub-Signature-256", &signature),
    ]);
    assert!(matches!(
        parse(&map, tampered.as_bytes(), SECRET),
        Err(HookError::BadSignature { .. })
    ));
    // The same body with one byte more at the end.
    let mut longer = body.to_vec();
    longer.push(b'\n');
    assert!(matches!(
        parse(&map, &longer, SECRET),
        Err(HookError::BadSignature { .. })
    ));
}

#[test]
fn github_malformed_json_after_a_good_signature() {
    let body = &GITHUB_PUSH.as_bytes()[..200];
    let err = github("push", body).unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.code(), "malformed_payload");
    assert!(
        err.to_string()
            .starts_with("GitHub push: the body is not valid JSON"),
        "{err}"
    );
    let err = github("push", b"[1, 2, 3]").unwrap_err();
    assert_eq!(
        err,
        HookError::Malformed("GitHub push: the body is not a JSON object".into())
    );
    let no_ref = edited(GITHUB_PUSH, |v| {
        v.as_object_mut().unwrap().remove("ref");
    });
    assert_eq!(
        github("push", &no_ref).unwrap_err(),
        HookError::Malformed("GitHub push: ref is missing".into())
    );
}

#[test]
fn github_ping() {
    let delivery = github("ping", GITHUB_PING.as_bytes()).unwrap();
    assert_eq!(delivery.provider, Provider::Github);
    assert_eq!(delivery.event, Event::Ping);
    assert_eq!(delivery.event.kind(), "ping");
}

#[test]
fn github_package_published_is_an_image_push() {
    let delivery = github("package", GITHUB_PACKAGE_PUBLISHED.as_bytes()).unwrap();
    assert_eq!(delivery.provider, Provider::Github);
    assert_eq!(
        delivery.event,
        Event::ImagePush {
            image: "ghcr.io/acme/shop-api".into(),
            tag: Some("latest".into()),
        }
    );
    // The older registry_package event has the same shape under another key.
    let registry_package =
        GITHUB_PACKAGE_PUBLISHED.replacen("\"package\":", "\"registry_package\":", 1);
    let delivery = github("registry_package", registry_package.as_bytes()).unwrap();
    assert!(matches!(delivery.event, Event::ImagePush { .. }));
}

#[test]
fn github_package_versions_without_a_tag_or_url() {
    // An untagged version, written `ghcr.io/owner/name:` by GitHub.
    let untagged = edited(GITHUB_PACKAGE_PUBLISHED, |v| {
        v["package"]["package_version"]["container_metadata"]["tag"]["name"] = "".into();
        v["package"]["package_version"]["package_url"] = "ghcr.io/Acme/shop-api:".into();
    });
    assert_eq!(
        github("package", &untagged).unwrap().event,
        Event::ImagePush {
            image: "ghcr.io/acme/shop-api".into(),
            tag: None
        }
    );
    // No package_url: built from the owner and the name; the tag from the URL
    // when the metadata has none.
    let no_url = edited(GITHUB_PACKAGE_PUBLISHED, |v| {
        let version = v["package"]["package_version"].as_object_mut().unwrap();
        version.remove("package_url");
    });
    assert_eq!(
        github("package", &no_url).unwrap().event,
        Event::ImagePush {
            image: "ghcr.io/acme/shop-api".into(),
            tag: Some("latest".into())
        }
    );
    let tag_in_url = edited(GITHUB_PACKAGE_PUBLISHED, |v| {
        v["package"]["package_version"]["container_metadata"] = Value::Null;
        v["package"]["package_version"]["package_url"] = "ghcr.io/acme/shop-api:v2.1.0".into();
    });
    assert_eq!(
        github("package", &tag_in_url).unwrap().event,
        Event::ImagePush {
            image: "ghcr.io/acme/shop-api".into(),
            tag: Some("v2.1.0".into())
        }
    );
}

#[test]
fn github_other_packages_and_actions_are_named() {
    let npm = edited(GITHUB_PACKAGE_PUBLISHED, |v| {
        v["package"]["ecosystem"] = "npm".into();
        v["package"]["package_type"] = "npm".into();
        v["package"]["registry"]["type"] = "npm".into();
        v["package"]["package_version"]["package_url"] = "npm.pkg.github.com/@acme/ui@1.0.0".into();
    });
    assert_eq!(
        github("package", &npm).unwrap().event,
        Event::Other("package published (npm package)".into())
    );
    let updated = edited(GITHUB_PACKAGE_PUBLISHED, |v| v["action"] = "updated".into());
    assert_eq!(
        github("package", &updated).unwrap().event,
        Event::Other("package updated".into())
    );
    let delivery = github("issues", br#"{"action": "opened"}"#).unwrap();
    assert_eq!(delivery.event, Event::Other("issues".into()));
    assert_eq!(delivery.event.kind(), "other");
}

#[test]
fn github_form_encoded_body() {
    // Content type "application/x-www-form-urlencoded": payload=<url-encoded JSON>.
    let mut body = b"payload=".to_vec();
    for byte in GITHUB_PUSH.bytes() {
        match byte {
            b' ' => body.push(b'+'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => body.push(byte),
            other => body.extend(format!("%{other:02X}").bytes()),
        }
    }
    let signature = format!("sha256={}", hmac_hex(SECRET, &body));
    let map = headers(&[
        ("X-GitHub-Event", "push"),
        ("X-Hub-Signature-256", &signature),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ]);
    let push = push_of(parse(&map, &body, SECRET).unwrap());
    assert_eq!(push.git_ref, GitRef::Branch("main".into()));
    assert_eq!(push.head_message.as_deref(), Some("Update README.md"));
}

#[test]
fn github_deletion_and_creation() {
    let deletion = edited(GITHUB_PUSH, |v| {
        v["ref"] = "refs/tags/simple-tag".into();
        v["before"] = "6113728f27ae82c7b1a177c8d03f9e96e0adf246".into();
        v["after"] = "0000000000000000000000000000000000000000".into();
        v["deleted"] = true.into();
        v["commits"] = Value::Array(vec![]);
        v["head_commit"] = Value::Null;
    });
    let push = push_of(github("push", &deletion).unwrap());
    assert!(push.deleted);
    assert_eq!(push.after, None);
    assert_eq!(push.git_ref, GitRef::Tag("simple-tag".into()));
    assert_eq!(push.changed_files, None);
    let creation = edited(GITHUB_PUSH, |v| {
        v["before"] = "0000000000000000000000000000000000000000".into();
        v["created"] = true.into();
    });
    let push = push_of(github("push", &creation).unwrap());
    assert!(!push.deleted);
    assert_eq!(
        push.changed_files, None,
        "a new ref: the diff base is unknown"
    );
}

#[test]
fn github_long_or_incomplete_commit_lists_mean_unknown_files() {
    let twenty = edited(GITHUB_PUSH, |v| {
        let commit = v["commits"][0].clone();
        v["commits"] = Value::Array(vec![commit; 20]);
    });
    assert_eq!(
        push_of(github("push", &twenty).unwrap()).changed_files,
        None
    );
    let nineteen = edited(GITHUB_PUSH, |v| {
        let commit = v["commits"][0].clone();
        v["commits"] = Value::Array(vec![commit; 19]);
    });
    assert_eq!(
        push_of(github("push", &nineteen).unwrap()).changed_files,
        Some(vec!["api/orders.go".into(), "go.mod".into()])
    );
    let no_lists = edited(GITHUB_PUSH, |v| {
        v["commits"][1].as_object_mut().unwrap().remove("modified");
    });
    assert_eq!(
        push_of(github("push", &no_lists).unwrap()).changed_files,
        None
    );
    let empty = edited(GITHUB_PUSH, |v| v["commits"] = Value::Array(vec![]));
    assert_eq!(push_of(github("push", &empty).unwrap()).changed_files, None);
    let many_files = edited(GITHUB_PUSH, |v| {
        let files: Vec<Value> = (0..3000).map(|i| format!("gen/{i}.rs").into()).collect();
        v["commits"][0]["added"] = Value::Array(files);
    });
    assert_eq!(
        push_of(github("push", &many_files).unwrap()).changed_files,
        None
    );
}

// ---- GitLab ----

fn gitlab(event: &str, token: Option<&str>, body: &[u8]) -> Result<Delivery, HookError> {
    let mut pairs = vec![
        ("X-Gitlab-Event", event),
        (
            "X-Gitlab-Event-UUID",
            "13792a34-cac6-4fda-95a8-c58e00a3954e",
        ),
        ("X-Gitlab-Instance", "https://gitlab.example.com"),
        ("Content-Type", "application/json"),
    ];
    if let Some(token) = token {
        pairs.push(("X-Gitlab-Token", token));
    }
    parse(&headers(&pairs), body, SECRET)
}

const TOKEN: &str = "It's a Secret to Everybody";

#[test]
fn gitlab_push() {
    let body = edited(GITLAB_PUSH, |v| v["total_commits_count"] = 2.into());
    let delivery = gitlab("Push Hook", Some(TOKEN), &body).unwrap();
    assert_eq!(delivery.provider, Provider::Gitlab);
    assert_eq!(
        delivery.delivery_id.as_deref(),
        Some("13792a34-cac6-4fda-95a8-c58e00a3954e")
    );
    assert_eq!(
        push_of(delivery),
        Push {
            git_ref: GitRef::Branch("master".into()),
            after: Some("da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into()),
            deleted: false,
            head_message: Some("fixed readme".into()),
            changed_files: Some(vec![
                "CHANGELOG".into(),
                "app/controller/application.rb".into()
            ]),
            repository: Some("mike/diaspora".into()),
            default_branch: Some("master".into()),
        }
    );
}

#[test]
fn gitlab_truncated_commit_list_means_unknown_files() {
    // As documented: 4 commits pushed, 2 listed.
    let push = push_of(gitlab("Push Hook", Some(TOKEN), GITLAB_PUSH.as_bytes()).unwrap());
    assert_eq!(push.changed_files, None);
    assert_eq!(push.head_message.as_deref(), Some("fixed readme"));
}

#[test]
fn gitlab_token_must_match() {
    let body = GITLAB_PUSH.as_bytes();
    let err = gitlab("Push Hook", Some("It's a secret to everybody"), body).unwrap_err();
    assert_eq!(
        err,
        HookError::BadSignature {
            provider: Provider::Gitlab,
            header: "X-Gitlab-Token"
        }
    );
    assert_eq!(err.status(), 401);
    let err = gitlab("Push Hook", None, body).unwrap_err();
    assert_eq!(
        err,
        HookError::MissingSignature {
            provider: Provider::Gitlab,
            header: "X-Gitlab-Token"
        }
    );
    assert!(gitlab("Push Hook", Some(""), body).is_err());
    assert!(gitlab("Push Hook", Some("It's a Secret to Everybody "), body).is_err());
}

#[test]
fn gitlab_tag_push() {
    let push = push_of(gitlab("Tag Push Hook", Some(TOKEN), GITLAB_TAG_PUSH.as_bytes()).unwrap());
    assert_eq!(
        push,
        Push {
            git_ref: GitRef::Tag("v1.0.0".into()),
            // The commit, not the annotated tag object in `after`.
            after: Some("5937ac0a7beb003549fc5fd26fc247adbce4a52e".into()),
            deleted: false,
            head_message: Some("Tag message".into()),
            changed_files: None,
            repository: Some("jsmith/example".into()),
            default_branch: Some("master".into()),
        }
    );
    let trigger = Trigger {
        tag_pattern: Some("v*".into()),
        ..Trigger::default()
    };
    assert!(decide(&trigger, &push).is_deploy());
}

#[test]
fn gitlab_deletion() {
    let deletion = edited(GITLAB_TAG_PUSH, |v| {
        v["before"] = "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7".into();
        v["after"] = "0000000000000000000000000000000000000000".into();
        v["checkout_sha"] = Value::Null;
    });
    let push = push_of(gitlab("Tag Push Hook", Some(TOKEN), &deletion).unwrap());
    assert!(push.deleted);
    assert_eq!(push.after, None);
    assert!(!decide(&Trigger::default(), &push).is_deploy());
}

#[test]
fn gitlab_system_hook_and_other_events() {
    let body = edited(GITLAB_PUSH, |v| v["total_commits_count"] = 2.into());
    let push = push_of(gitlab("System Hook", Some(TOKEN), &body).unwrap());
    assert_eq!(push.git_ref, GitRef::Branch("master".into()));
    let project_create = br#"{"event_name": "project_create", "name": "StoreCloud"}"#;
    assert_eq!(
        gitlab("System Hook", Some(TOKEN), project_create)
            .unwrap()
            .event,
        Event::Other("System Hook: project_create".into())
    );
    assert_eq!(
        gitlab(
            "Merge Request Hook",
            Some(TOKEN),
            br#"{"object_kind": "merge_request"}"#
        )
        .unwrap()
        .event,
        Event::Other("Merge Request Hook".into())
    );
    // The token is checked before the event is looked at.
    assert!(gitlab("Merge Request Hook", Some("nope"), b"{}").is_err());
}

// ---- Gitea, Forgejo ----

#[test]
fn gitea_push_with_x_gitea_signature() {
    let body = GITEA_PUSH.as_bytes();
    let signature = hmac_hex(SECRET, body);
    // Gitea also sends the GitHub and Gogs headers.
    let map = headers(&[
        ("X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
        ("X-Gitea-Event", "push"),
        ("X-Gitea-Event-Type", "push"),
        ("X-Gitea-Signature", &signature),
        ("X-GitHub-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
        ("X-GitHub-Event", "push"),
        ("X-Gogs-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
        ("X-Gogs-Event", "push"),
        ("Content-Type", "application/json"),
    ]);
    let delivery = parse(&map, body, SECRET).unwrap();
    assert_eq!(delivery.provider, Provider::Gitea);
    assert_eq!(
        delivery.delivery_id.as_deref(),
        Some("f6266f16-1bf3-46a5-9ea4-602e06ead473")
    );
    assert_eq!(
        push_of(delivery),
        Push {
            git_ref: GitRef::Branch("develop".into()),
            after: Some("bffeb74224043ba2feb48d137756c8a9331c449a".into()),
            deleted: false,
            head_message: Some("Webhooks Yay!".into()),
            changed_files: Some(vec!["README.md".into(), "web/app.js".into()]),
            repository: Some("gitea/webhooks".into()),
            default_branch: Some("master".into()),
        }
    );
}

#[test]
fn gitea_signature_checks() {
    let body = GITEA_PUSH.as_bytes();
    let wrong = hmac_hex(b"wrong", body);
    let map = headers(&[
        ("X-Gitea-Event", "push"),
        ("X-Gitea-Signature", &wrong),
        ("X-GitHub-Event", "push"),
    ]);
    assert_eq!(
        parse(&map, body, SECRET).unwrap_err(),
        HookError::BadSignature {
            provider: Provider::Gitea,
            header: "X-Gitea-Signature"
        }
    );
    // A signature for GitHub's header alone is not looked at as GitHub's:
    // the Gitea header decides, and GitHub's 256 header is its fallback.
    let map = headers(&[("X-Gitea-Event", "push"), ("X-GitHub-Event", "push")]);
    assert_eq!(
        parse(&map, body, SECRET).unwrap_err(),
        HookError::MissingSignature {
            provider: Provider::Gitea,
            header: "X-Gitea-Signature"
        }
    );
    let hub = format!("sha256={}", hmac_hex(SECRET, body));
    let map = headers(&[("X-Gitea-Event", "push"), ("X-Hub-Signature-256", &hub)]);
    assert!(parse(&map, body, SECRET).is_ok());
}

#[test]
fn gitea_truncated_commit_list_means_unknown_files() {
    // Gitea lists a few commits (FEED_MAX_COMMIT_NUM) and counts them all.
    let body = edited(GITEA_PUSH, |v| v["total_commits"] = 12.into());
    let signature = hmac_hex(SECRET, &body);
    let map = headers(&[("X-Gitea-Event", "push"), ("X-Gitea-Signature", &signature)]);
    assert_eq!(
        push_of(parse(&map, &body, SECRET).unwrap()).changed_files,
        None
    );
}

#[test]
fn gitea_test_delivery_is_a_ping() {
    // "Test delivery" sends the head commit as both before and after.
    let body = edited(GITEA_PUSH, |v| {
        v["before"] = "bffeb74224043ba2feb48d137756c8a9331c449a".into();
    });
    let signature = hmac_hex(SECRET, &body);
    let map = headers(&[("X-Gitea-Event", "push"), ("X-Gitea-Signature", &signature)]);
    assert_eq!(parse(&map, &body, SECRET).unwrap().event, Event::Ping);
    let issues = headers(&[
        ("X-Gitea-Event", "issues"),
        ("X-Gitea-Signature", &hmac_hex(SECRET, b"{}")),
    ]);
    assert_eq!(
        parse(&issues, b"{}", SECRET).unwrap().event,
        Event::Other("issues".into())
    );
}

#[test]
fn forgejo_push() {
    let body = edited(GITEA_PUSH, |v| {
        v["ref"] = "refs/heads/main".into();
        v["compare_url"] = "https://codeberg.org/acme/shop/compare/28e1879d02...bffeb74224".into();
        v["repository"]["full_name"] = "acme/shop".into();
    });
    let signature = hmac_hex(SECRET, &body);
    // Forgejo sends its own headers and Gitea's; a stale Gitea signature is
    // not looked at when Forgejo's is there.
    let map = headers(&[
        ("X-Forgejo-Delivery", "7bd3f2b0-29a4-4e21-9a4e-9f5e0c1b2a3d"),
        ("X-Forgejo-Event", "push"),
        ("X-Forgejo-Event-Type", "push"),
        ("X-Forgejo-Signature", &signature),
        ("X-Gitea-Delivery", "7bd3f2b0-29a4-4e21-9a4e-9f5e0c1b2a3d"),
        ("X-Gitea-Event", "push"),
        ("X-Gitea-Signature", "00"),
        ("X-GitHub-Event", "push"),
    ]);
    let delivery = parse(&map, &body, SECRET).unwrap();
    assert_eq!(delivery.provider, Provider::Gitea);
    assert_eq!(
        delivery.delivery_id.as_deref(),
        Some("7bd3f2b0-29a4-4e21-9a4e-9f5e0c1b2a3d")
    );
    let push = push_of(delivery);
    assert_eq!(push.git_ref, GitRef::Branch("main".into()));
    assert_eq!(push.repository.as_deref(), Some("acme/shop"));
    let wrong = headers(&[
        ("X-Forgejo-Event", "push"),
        ("X-Forgejo-Signature", &hmac_hex(b"old secret", &body)),
    ]);
    assert!(matches!(
        parse(&wrong, &body, SECRET),
        Err(HookError::BadSignature {
            header: "X-Forgejo-Signature",
            ..
        })
    ));
}

// ---- Bitbucket ----

fn bitbucket(event: &str, body: &[u8]) -> Result<Delivery, HookError> {
    let signature = format!("sha256={}", hmac_hex(SECRET, body));
    let map = headers(&[
        ("X-Event-Key", event),
        ("X-Hook-UUID", "cb1e8b9f-30b0-4c4b-8d39-1f2b0e7c8a6d"),
        ("X-Request-UUID", "fa2b8d7e-0f1c-4e33-9d1a-5b6c7d8e9f00"),
        ("X-Attempt-Number", "1"),
        ("X-Hub-Signature", &signature),
        ("User-Agent", "Bitbucket-Webhooks/2.0"),
    ]);
    parse(&map, body, SECRET)
}

#[test]
fn bitbucket_repo_push() {
    let delivery = bitbucket("repo:push", BITBUCKET_PUSH.as_bytes()).unwrap();
    assert_eq!(delivery.provider, Provider::Bitbucket);
    assert_eq!(
        delivery.delivery_id.as_deref(),
        Some("fa2b8d7e-0f1c-4e33-9d1a-5b6c7d8e9f00")
    );
    assert_eq!(
        push_of(delivery),
        Push {
            git_ref: GitRef::Branch("main".into()),
            after: Some("709d658dc5b6d6afcd46049c2f332ee3f515a67d".into()),
            deleted: false,
            head_message: Some("Add the checkout page\n".into()),
            changed_files: None,
            repository: Some("team_name/repo_name".into()),
            default_branch: None,
        }
    );
}

#[test]
fn bitbucket_deletion() {
    let body = edited(BITBUCKET_PUSH, |v| {
        let change = &mut v["push"]["changes"][0];
        change["new"] = Value::Null;
        change["closed"] = true.into();
        change["commits"] = Value::Array(vec![]);
    });
    let push = push_of(bitbucket("repo:push", &body).unwrap());
    assert!(push.deleted);
    assert_eq!(push.after, None);
    assert_eq!(push.head_message, None);
    assert_eq!(push.git_ref, GitRef::Branch("main".into()));
    assert_eq!(
        decide(&Trigger::default(), &push).reason(),
        "branch \"main\" was deleted: there is nothing to deploy"
    );
}

#[test]
fn bitbucket_pushes_of_several_refs() {
    let body = edited(BITBUCKET_PUSH, |v| {
        let mut tag = v["push"]["changes"][0].clone();
        tag["new"]["type"] = "tag".into();
        tag["new"]["name"] = "v1.2.0".into();
        tag["old"] = Value::Null;
        tag["created"] = true.into();
        let mut dev = v["push"]["changes"][0].clone();
        dev["new"]["name"] = "dev".into();
        let main = v["push"]["changes"][0].clone();
        v["push"]["changes"] = Value::Array(vec![dev, main, tag]);
    });
    let delivery = bitbucket("repo:push", &body).unwrap();
    assert_eq!(delivery.event.kind(), "push");
    let pushes = delivery.event.pushes();
    assert_eq!(pushes.len(), 3);
    assert_eq!(pushes[2].git_ref, GitRef::Tag("v1.2.0".into()));
    let trigger = Trigger {
        branch: Some("main".into()),
        ..Trigger::default()
    };
    assert_eq!(
        decide_any(&trigger, pushes).reason(),
        "push to branch \"main\" (709d658)"
    );
}

#[test]
fn bitbucket_signature_checks_and_ping() {
    let body = BITBUCKET_PUSH.as_bytes();
    let map = headers(&[("X-Event-Key", "repo:push")]);
    assert_eq!(
        parse(&map, body, SECRET).unwrap_err(),
        HookError::MissingSignature {
            provider: Provider::Bitbucket,
            header: "X-Hub-Signature"
        }
    );
    let wrong = format!("sha256={}", hmac_hex(b"wrong", body));
    let map = headers(&[("X-Event-Key", "repo:push"), ("X-Hub-Signature", &wrong)]);
    assert!(matches!(
        parse(&map, body, SECRET),
        Err(HookError::BadSignature { .. })
    ));
    assert_eq!(
        bitbucket("diagnostics:ping", br#"{"test": true}"#)
            .unwrap()
            .event,
        Event::Ping
    );
    assert_eq!(
        bitbucket("pullrequest:created", b"{}").unwrap().event,
        Event::Other("pullrequest:created".into())
    );
    assert_eq!(
        bitbucket("repo:push", br#"{"push": {}}"#).unwrap_err(),
        HookError::Malformed("Bitbucket repo:push: push.changes is missing".into())
    );
}

#[test]
fn bitbucket_data_center_refs_changed() {
    let push = push_of(bitbucket("repo:refs_changed", BITBUCKET_SERVER_PUSH.as_bytes()).unwrap());
    assert_eq!(
        push,
        Push {
            git_ref: GitRef::Branch("master".into()),
            after: Some("178864a7d521b6f5e720b386b2c2b0ef8563e0dc".into()),
            deleted: false,
            head_message: None,
            changed_files: None,
            repository: Some("PROJ/repository".into()),
            default_branch: None,
        }
    );
    let deleted = edited(BITBUCKET_SERVER_PUSH, |v| {
        v["changes"][0]["type"] = "DELETE".into();
        v["changes"][0]["toHash"] = "0000000000000000000000000000000000000000".into();
    });
    let push = push_of(bitbucket("repo:refs_changed", &deleted).unwrap());
    assert!(push.deleted);
    assert_eq!(push.after, None);
}

// ---- Docker Hub, manual ----

#[test]
fn docker_hub_push_is_an_unsigned_image_push() {
    let map = headers(&[
        ("Content-Type", "application/json"),
        ("User-Agent", "Go-http-client/1.1"),
    ]);
    let delivery = parse(&map, DOCKER_HUB_PUSH.as_bytes(), SECRET).unwrap();
    assert_eq!(
        delivery,
        Delivery {
            provider: Provider::DockerHub,
            event: Event::ImagePush {
                image: "svendowideit/testhook".into(),
                tag: Some("latest".into()),
            },
            delivery_id: None,
        }
    );
    if let Event::ImagePush { image, tag } = &delivery.event {
        assert!(decide_image("svendowideit/testhook", image, tag.as_deref()).is_deploy());
        assert!(!decide_image("svendowideit/testhook:v2", image, tag.as_deref()).is_deploy());
    }
}

#[test]
fn plain_posts_are_manual() {
    let none = HeaderMap::new();
    for body in [
        &b""[..],
        b"deploy",
        b"{not json",
        br#"{"ref": "main"}"#,
        br#"{"push_data": {"tag": "x"}}"#,
        b"\xff\xfe",
    ] {
        let delivery = parse(&none, body, SECRET).unwrap();
        assert_eq!(delivery.provider, Provider::Generic, "{body:?}");
        assert_eq!(delivery.event, Event::Manual, "{body:?}");
        assert_eq!(delivery.event.kind(), "manual");
    }
    // The secret plays no part: the URL token is the authentication.
    assert_eq!(parse(&none, b"", b"").unwrap().event, Event::Manual);
}

#[test]
fn an_app_without_a_secret_cannot_verify_signed_hosts() {
    let err = parse(&headers(&[("X-GitHub-Event", "ping")]), b"{}", b"").unwrap_err();
    assert_eq!(err, HookError::NoSecret(Provider::Github));
    assert_eq!(err.status(), 401);
    assert_eq!(err.code(), "no_webhook_secret");
    let err = parse(
        &headers(&[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "")]),
        b"{}",
        b"",
    )
    .unwrap_err();
    assert_eq!(err, HookError::NoSecret(Provider::Gitlab));
}

#[test]
fn provider_names() {
    assert_eq!(Provider::DockerHub.to_string(), "dockerhub");
    assert_eq!(Provider::Github.label(), "GitHub");
    assert_eq!(
        serde_json::to_string(&Provider::Gitlab).unwrap(),
        "\"gitlab\""
    );
    assert_eq!(
        serde_json::from_str::<Provider>("\"bitbucket\"").unwrap(),
        Provider::Bitbucket
    );
    assert_eq!(
        GitRef::parse("refs/heads/feature/x").to_string(),
        "branch \"feature/x\""
    );
    assert_eq!(GitRef::parse("refs/tags/v1"), GitRef::Tag("v1".into()));
    assert_eq!(
        GitRef::parse("refs/pull/1/head"),
        GitRef::Other("refs/pull/1/head".into())
    );
    let event = serde_json::to_value(Event::ImagePush {
        image: "acme/api".into(),
        tag: None,
    })
    .unwrap();
    assert_eq!(event["kind"], "image_push");
    assert_eq!(event["detail"]["image"], "acme/api");
}

// ---- never panics ----

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const EVENT_HEADERS: [(&str, &[&str]); 6] = [
    (
        "X-GitHub-Event",
        &["push", "ping", "package", "registry_package", "issues", ""],
    ),
    ("X-Gitea-Event", &["push", "create", "issues"]),
    ("X-Forgejo-Event", &["push", "release"]),
    (
        "X-Gitlab-Event",
        &["Push Hook", "Tag Push Hook", "System Hook", "Note Hook"],
    ),
    (
        "X-Event-Key",
        &[
            "repo:push",
            "repo:refs_changed",
            "diagnostics:ping",
            "issue:created",
        ],
    ),
    ("X-Gogs-Event", &["push"]),
];

const SIGNATURE_HEADERS: [&str; 6] = [
    "X-Hub-Signature-256",
    "X-Hub-Signature",
    "X-Gitea-Signature",
    "X-Forgejo-Signature",
    "X-Gogs-Signature",
    "X-Gitlab-Token",
];

fn random_delivery(rng: &mut Rng, fixtures: &[&str]) -> (HeaderMap, Vec<u8>) {
    // A fixture with a few random byte edits and cuts, or random bytes.
    let mut body = if rng.below(4) == 0 {
        (0..rng.below(300)).map(|_| rng.next() as u8).collect()
    } else {
        fixtures[rng.below(fixtures.len())].as_bytes().to_vec()
    };
    for _ in 0..rng.below(4) {
        if body.is_empty() {
            break;
        }
        let at = rng.below(body.len());
        match rng.below(4) {
            0 => body[at] = rng.next() as u8,
            1 => body.truncate(at),
            2 => body.insert(at, b"{}[]\":,0n-\\"[rng.below(11)]),
            _ => {
                body.remove(at);
            }
        }
    }
    let mut map = HeaderMap::new();
    if rng.below(8) != 0 {
        let (name, values) = EVENT_HEADERS[rng.below(EVENT_HEADERS.len())];
        let value = rng.pick(values);
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    // Mostly a correct signature, so the payload readers run.
    let signature = match rng.below(4) {
        0 => format!("sha256={}", hmac_hex(SECRET, &body)),
        1 => hmac_hex(SECRET, &body),
        2 => String::from_utf8_lossy(SECRET).into_owned(),
        _ => hex::encode(
            (0..rng.below(40))
                .map(|_| rng.next() as u8)
                .collect::<Vec<_>>(),
        ),
    };
    for name in SIGNATURE_HEADERS {
        if rng.below(2) == 0 {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(&signature).unwrap(),
            );
        }
    }
    if rng.below(6) == 0 {
        let raw: Vec<u8> = (0..rng.below(20)).map(|_| rng.next() as u8).collect();
        if let Ok(value) = HeaderValue::from_bytes(&raw) {
            map.insert(http::header::CONTENT_TYPE, value);
        }
    }
    (map, body)
}

#[test]
fn parse_and_decide_never_panic() {
    let fixtures = [
        GITHUB_PUSH,
        GITHUB_PING,
        GITHUB_PACKAGE_PUBLISHED,
        GITEA_PUSH,
        GITLAB_PUSH,
        GITLAB_TAG_PUSH,
        BITBUCKET_PUSH,
        BITBUCKET_SERVER_PUSH,
        DOCKER_HUB_PUSH,
    ];
    let triggers = [
        Trigger::default(),
        Trigger {
            branch: Some("main".into()),
            tag_pattern: Some("v*".into()),
            watch_paths: vec!["api/**".into(), "!docs/**".into()],
        },
        Trigger {
            branch: None,
            tag_pattern: Some("[".into()),
            watch_paths: vec!["{".into()],
        },
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    for _ in 0..20_000 {
        let (map, body) = random_delivery(&mut rng, &fixtures);
        let outcome = match parse(&map, &body, SECRET) {
            Ok(delivery) => {
                for trigger in &triggers {
                    let decision = decide_any(trigger, delivery.event.pushes());
                    assert!(!decision.reason().is_empty());
                }
                if let Event::ImagePush { image, tag } = &delivery.event {
                    let _ = decide_image("ghcr.io/acme/shop-api:latest", image, tag.as_deref());
                }
                delivery.event.kind()
            }
            Err(err) => {
                assert!(matches!(err.status(), 400 | 401));
                err.code()
            }
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    // The loop reached the payload readers, not only the signature check.
    for kind in [
        "push",
        "ping",
        "image_push",
        "manual",
        "other",
        "malformed_payload",
        "bad_signature",
    ] {
        assert!(
            outcomes.get(kind).copied().unwrap_or(0) > 0,
            "{kind}: {outcomes:?}"
        );
    }
}

#[test]
fn skip_marker_and_decide_never_panic_on_odd_text() {
    let mut rng = Rng(42);
    for _ in 0..2_000 {
        let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let _ = skip_marker(&text);
        let push = Push {
            git_ref: GitRef::parse(&text),
            after: Some(text.clone()),
            deleted: false,
            head_message: Some(text.clone()),
            changed_files: Some(vec![text.clone()]),
            repository: None,
            default_branch: Some(text.clone()),
        };
        let trigger = Trigger {
            branch: Some(text.clone()),
            tag_pattern: Some(text.clone()),
            watch_paths: vec![text.clone(), format!("!{text}")],
        };
        let _ = decide(&trigger, &push);
        let _ = trigger.validate();
        let _ = decide_image(&text, &text, Some(&text));
    }
}

#[test]
fn each_sender_is_read_only_up_to_its_own_limit() {
    assert_eq!(
        body_limit(&headers(&[("x-github-event", "push")])),
        25 << 20
    );
    assert_eq!(
        body_limit(&headers(&[("x-gitlab-event", "Push Hook")])),
        25 << 20
    );
    assert_eq!(body_limit(&headers(&[("x-gitea-event", "push")])), 10 << 20);
    assert_eq!(
        body_limit(&headers(&[("x-event-key", "repo:push")])),
        10 << 20
    );
    assert_eq!(body_limit(&HeaderMap::new()), 64 << 10);
    for h in [
        headers(&[("x-github-event", "push")]),
        headers(&[("x-forgejo-event", "push")]),
        HeaderMap::new(),
    ] {
        assert!(body_limit(&h) <= 25 << 20);
    }
}
