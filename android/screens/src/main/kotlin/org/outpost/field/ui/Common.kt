package org.outpost.field.ui

import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.PaddingValues
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.imePadding
import androidx.compose.foundation.layout.padding
import androidx.compose.material3.ExperimentalMaterial3Api
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Scaffold
import androidx.compose.material3.Text
import androidx.compose.material3.TextButton
import androidx.compose.material3.TopAppBar
import androidx.compose.runtime.Composable
import androidx.compose.runtime.staticCompositionLocalOf
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import kotlinx.coroutines.CoroutineExceptionHandler
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch

/**
 * What differs between the phone and the JVM build that renders these screens: the camera
 * and the device's name. The app provides the Android one; the screenshot tests a stand-in.
 */
interface FieldPlatform {
    /** Returns a function that opens the camera to read a QR code. */
    @Composable
    fun rememberQrScanner(onResult: (String) -> Unit): () -> Unit

    /** How the phone names itself at enrolment. */
    val deviceLabel: String
}

val LocalFieldPlatform = staticCompositionLocalOf<FieldPlatform> { error("no FieldPlatform provided") }

@Composable
fun rememberQrScanner(onResult: (String) -> Unit): () -> Unit = LocalFieldPlatform.current.rememberQrScanner(onResult)

/**
 * A failure nothing else caught (the core's refusals are caught by the models): reported,
 * never a crash of the whole app in front of a beneficiary.
 */
private val reportFailure = CoroutineExceptionHandler { _, e -> System.err.println("outpost: ${e.stackTraceToString()}") }

/** Runs a core call off the main thread: every core call blocks. */
fun CoroutineScope.io(block: () -> Unit) {
    launch(Dispatchers.IO + reportFailure) { block() }
}

/** Every screen's frame: a title, a way back, and the content in a padded column. */
@OptIn(ExperimentalMaterial3Api::class)
@Composable
fun Screen(title: String, back: (() -> Unit)?, actions: @Composable () -> Unit = {}, content: @Composable (PaddingValues) -> Unit) {
    Scaffold(
        topBar = {
            TopAppBar(
                title = { Text(title) },
                navigationIcon = { if (back != null) TextButton(onClick = back) { Text("Back") } },
                actions = { actions() },
            )
        },
    ) { padding ->
        Column(Modifier.fillMaxSize().padding(padding).imePadding().padding(16.dp), verticalArrangement = Arrangement.spacedBy(12.dp)) {
            content(padding)
        }
    }
}

/** A refusal or failure, in the core's words. */
@Composable
fun ErrorLine(message: String?) {
    if (message != null) Text(message, color = MaterialTheme.colorScheme.error)
}
