/* The pod sandbox's process: holds the pod's namespaces open and does nothing else. It is PID 1 of
 * the pod, so it reaps children that get orphaned into it, and exits on SIGINT/SIGTERM (the
 * runtime's stop). Built static (build-pause.sh) to run in an image with no other file. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { _exit(128 + sig); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction on_stop = {.sa_handler = stop};
  struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  if (getpid() != 1) {
    /* Not fatal (`pause` run by hand to try it), but worth saying. */
    static const char warning[] = "pause: not running as PID 1\n";
    (void)!write(2, warning, sizeof warning - 1);
  }
  if (sigaction(SIGINT, &on_stop, NULL) < 0 || sigaction(SIGTERM, &on_stop, NULL) < 0 ||
      sigaction(SIGCHLD, &on_child, NULL) < 0)
    return 1;
  for (;;) pause();
}
