#include "line_editor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

void line_editor_close(void) {
    if (history_file != NULL)
        write_history(history_file);
}
