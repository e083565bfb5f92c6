#include "line_editor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <editline/readline.h>

static const char *history_file;
static const char *const *command_words;
static size_t command_word_count;
static const char *argument_command_word;
static const char *const *argument_words;
static size_t argument_word_count;

/* The candidate list readline is walking through; set before each completion. */
static const char *const *candidates;
static size_t candidate_count;

static char *next_candidate(const char *text, int state) {
    static size_t index;
    if (state == 0)
        index = 0;
    size_t length = strlen(text);
    while (index < candidate_count) {
        const char *word = candidates[index++];
        if (strncmp(word, text, length) == 0)
            return strdup(word);
    }
    return NULL;
}

static char **complete(const char *text, int start, int end) {
    (void)end;
    rl_attempted_completion_over = 1; /* never fall back to file names */
    size_t command_length = argument_command_word ? strlen(argument_command_word) : 0;
    if (start == 0) {
        candidates = command_words;
        candidate_count = command_word_count;
    } else if (argument_command_word && strncmp(rl_line_buffer, argument_command_word, command_length) == 0 &&
               rl_line_buffer[command_length] == ' ' && strchr(rl_line_buffer + command_length + 1, ' ') == NULL) {
        candidates = argument_words;
        candidate_count = argument_word_count;
    } else {
        return NULL;
    }
    return rl_completion_matches(text, next_candidate);
}

void line_editor_open(const char *program, const char *history_path,
                      const char *const *commands, size_t command_count,
                      const char *argument_command, const char *const *arguments, size_t argument_count) {
    rl_readline_name = program;
    command_words = commands;
    command_word_count = command_count;
    argument_command_word = argument_command;
    argument_words = arguments;
    argument_word_count = argument_count;
    rl_attempted_completion_function = complete;
    using_history();
    history_file = history_path;
    if (history_file != NULL)
        read_history(history_file);
}

char *line_editor_read(const char *prompt) {
    char *line = readline(prompt);
    if (line != NULL && line[strspn(line, " \t")] != '\0')
        add_history(line);
    return line;
}

static char *finished_line;
static int line_finished;

static void finish_line(char *line) {
    finished_line = line;
    line_finished = 1;
    rl_callback_handler_remove();
}

char *line_editor_read_watching(const char *prompt, int wake_fd, int (*on_wake)(void *), void *context) {
    if (!isatty(STDIN_FILENO))
        return line_editor_read(prompt);
    finished_line = NULL;
    line_finished = 0;
    rl_callback_handler_install(prompt, finish_line);
    while (!line_finished) {
        struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = wake_fd, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[1].revents & POLLIN) {
            char drain[64];
            while (read(wake_fd, drain, sizeof drain) > 0) {
            }
            fflush(stdout);
            if (on_wake(context)) {
                fflush(stdout);
                rl_forced_update_display();
            }
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            int pending = 0;
            if (ioctl(STDIN_FILENO, FIONREAD, &pending) < 0 || pending == 0)
                break; /* the terminal hung up */
            rl_callback_read_char();
        }
    }
    if (!line_finished)
        rl_callback_handler_remove();
    if (finished_line != NULL && finished_line[strspn(finished_line, " \t")] != '\0')
        add_history(finished_line);
    return finished_line;
}

void line_editor_close(void) {
    if (history_file != NULL)
        write_history(history_file);
}
