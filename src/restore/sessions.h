// How the sessions of a tree are made again.
//
// A session is made by setsid(), which makes the caller the leader of a new
// session with its own pid as the session id; a child is born in its
// parent's session. So a process whose session is its own or its parent's
// comes back by the restored process calling setsid() or not (restorer.h).
// Two other cases exist in real programs (zdtm's session00 has both):
//
// - The process was born in its session from an ancestor that was in it
//   then and became a session leader since (fork(), then setsid() in the
//   parent). Every ancestor on the way up to one that is still in the
//   session is a session leader now, and was born in that session too:
//   each creates the next one down before it calls setsid().
// - The session's leader is gone and nothing of the tree above the process
//   is in the session (the process was re-parented to a child sub-reaper
//   after the processes in between exited). A temporary helper with the
//   session's pid (clone3 set_tid) is created by the adopting process: it
//   calls setsid(), creates the process (and any other such process of the
//   same session and parent) and exits; its children are re-parented to the
//   sub-reaper, which reaps the helper. The session keeps its id as long as
//   one member lives, so the helper's pid is not reused.
//
// A session whose leader lives elsewhere in the tree, a helper needed under
// a process that is no child sub-reaper, or inside a PID namespace, is not
// supported yet. The dump runs the same planning to refuse those before it
// kills anything.
#pragma once

#include <sys/types.h>

#include <functional>
#include <set>
#include <vector>

#include "base/error.h"
#include "tree.pb.h"

namespace cryo::restore {

struct SessionHelper {
    pid_t sid { 0 };       // its own pid too
    pid_t parent { 0 };    // the process of the tree that creates it and reaps it
    std::vector<pid_t> children;   // of the tree; their image parent is `parent`
};

struct SessionPlan {
    // Processes their parent creates before it calls setsid().
    std::set<pid_t> before_parent_setsid;
    std::vector<SessionHelper> helpers;
};

// `is_subreaper`: whether a live process of the tree was a child sub-reaper
// (PR_SET_CHILD_SUBREAPER). An error names the process and its session.
Result<SessionPlan> plan_sessions(const image::ProcessTree& tree, const std::function<bool(pid_t)>& is_subreaper);

} // namespace cryo::restore
